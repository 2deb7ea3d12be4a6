//! Loopback targets are refused when private targets are not allowed, by IP literal and by name.

use hookrelay_shared::testing::Receiver;

use crate::helpers::*;

#[tokio::test]
async fn a_loopback_target_is_refused_by_literal_and_by_name_when_private_targets_are_off() {
    let env = env_with(|c| c.allow_private_targets = false).await;
    let rx = Receiver::start().await;
    let port = rx.addr.port();
    let (literal, _) = webhook(
        &env,
        "literal",
        &format!("http://127.0.0.1:{port}/x"),
        &["*"],
        true,
    )
    .await;
    let (named, _) = webhook(&env, "named", &format!("http://localhost:{port}/x"), &["*"], true).await;
    let running = start(&env).await;
    let ch = env.channel().await;
    env.publish_raw(&ch, "user.created", &event("evt_ssrf", "user.created"))
        .await;

    for hook in [&literal, &named] {
        let a = &wait_attempts(&env, hook.id, 1).await[0];
        assert_eq!((a.status.as_str(), a.response_code), ("failed", None));
        let err = a.error.as_deref().unwrap_or_default();
        assert!(err.starts_with("refused: "), "{err}");
        assert!(err.contains("private, loopback or link-local"), "{err}");
    }
    assert_eq!(rx.count(), 0, "the receiver got nothing");

    running.shutdown().await;
    env.cleanup().await;
}
