//! `hookrelay up` and private targets: allowed by default only when the API listens on
//! loopback; an explicit `false` (environment, file, or the Docker image's) always wins.

use super::*;

/// Creates a webhook to a loopback URL through the API of a `hookrelay up` started with
/// `adjust`; the status the API answers (201 allowed, 422 refused).
async fn private_target_status(
    env: &TestEnv,
    token: &str,
    adjust: impl FnOnce(&mut std::process::Command),
) -> u16 {
    let mut cmd = command(&env.config, &["up"]);
    cmd.env_remove("HOOKRELAY_ALLOW_PRIVATE_TARGETS");
    adjust(&mut cmd);
    let (proc, url) = start_and_read(cmd, "hookrelay API:").await;
    let url = url.expect("hookrelay up prints its API address");
    // An API on 0.0.0.0 is reached on loopback.
    let url = url.replace("0.0.0.0", "127.0.0.1");
    let res = reqwest::Client::new()
        .post(format!("{url}/webhooks"))
        .bearer_auth(token)
        .json(&serde_json::json!({"name": "local", "url": "http://127.0.0.1:9/in", "event_types": ["*"]}))
        .send()
        .await
        .expect("sent");
    let status = res.status().as_u16();
    if status == 422 {
        let body = res.text().await.unwrap_or_default();
        assert!(body.contains("url"), "the refusal names the url: {body}");
    }
    drop(proc);
    status
}

/// The `ENV` of `deploy/Dockerfile` (`KEY=value` pairs, continuation lines joined).
fn dockerfile_env() -> Vec<(String, String)> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/Dockerfile");
    let text = std::fs::read_to_string(&path).expect("deploy/Dockerfile");
    let joined = text.replace("\\\n", " ");
    assert!(
        joined.lines().any(|l| l.trim() == r#"CMD ["up"]"#),
        "the image runs `up` by default"
    );
    joined
        .lines()
        .filter_map(|l| l.trim().strip_prefix("ENV "))
        .flat_map(|rest| rest.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
        .collect()
}

#[tokio::test]
async fn up_allows_private_targets_by_default_only_on_loopback_and_an_explicit_false_always_wins() {
    let env = TestEnv::new().await;
    let out = command(
        &env.config,
        &["tokens", "create", "--name", "t", "--role", "admin"],
    )
    .output()
    .expect("tokens create runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let token = stdout.lines().last().expect("token").trim().to_owned();

    // Nothing said, API on loopback: a local trial run, private targets allowed.
    assert_eq!(private_target_status(&env, &token, |_| {}).await, 201);
    // An explicit false in the environment.
    assert_eq!(
        private_target_status(&env, &token, |c| {
            c.env("HOOKRELAY_ALLOW_PRIVATE_TARGETS", "false");
        })
        .await,
        422
    );
    // An explicit false in the TOML file, the environment silent.
    let file = std::env::temp_dir().join(format!("hookrelay-{}.toml", env.config.namespace));
    std::fs::write(&file, "allow_private_targets = false\n").expect("config file");
    let status = private_target_status(&env, &token, |c| {
        c.env("HOOKRELAY_CONFIG", &file);
    })
    .await;
    let _ = std::fs::remove_file(&file);
    assert_eq!(status, 422, "false in HOOKRELAY_CONFIG wins");
    // Nothing said, API on every interface.
    assert_eq!(
        private_target_status(&env, &token, |c| {
            c.env("HOOKRELAY_API_ADDR", "0.0.0.0:0");
        })
        .await,
        422
    );
    // The Docker image's environment (its port made 0 so tests can run side by side).
    let image_env = dockerfile_env();
    assert!(
        image_env
            .iter()
            .any(|(k, v)| k == "HOOKRELAY_API_ADDR" && v.starts_with("0.0.0.0:")),
        "{image_env:?}"
    );
    assert_eq!(
        private_target_status(&env, &token, |c| {
            for (k, v) in &image_env {
                c.env(k, v);
            }
            c.env("HOOKRELAY_API_ADDR", "0.0.0.0:0")
                .env("HOOKRELAY_LOG_FORMAT", "text");
        })
        .await,
        422,
        "the image's default command does not open private targets"
    );
    // An explicit true is honoured everywhere.
    assert_eq!(
        private_target_status(&env, &token, |c| {
            c.env("HOOKRELAY_API_ADDR", "0.0.0.0:0")
                .env("HOOKRELAY_ALLOW_PRIVATE_TARGETS", "true");
        })
        .await,
        201
    );
    env.cleanup().await;
}
