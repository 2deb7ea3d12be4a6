//! End-to-end tests of the query API through the real `hookrelay` binary: a token made with the
//! CLI opens the API served by `hookrelay api`, and SIGTERM stops it cleanly.

use std::{
    io::{BufRead, BufReader},
    process::Stdio,
};

use hookrelay_shared::testing::TestEnv;

use crate::support::command;

#[tokio::test]
async fn a_token_made_with_the_cli_opens_the_api_of_hookrelay_api_and_sigterm_stops_it() {
    let env = TestEnv::new().await;
    let out = command(
        &env.config,
        &["tokens", "create", "--name", "e2e", "--role", "admin"],
    )
    .output()
    .expect("hookrelay tokens create runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let token = stdout
        .lines()
        .last()
        .expect("token on the last line")
        .trim()
        .to_owned();

    let mut child = command(&env.config, &["api"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("hookrelay api starts");
    let stdout = child.stdout.take().expect("stdout");
    let base = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find_map(|l| {
                l.split("http://")
                    .nth(1)
                    .map(|rest| rest.trim_end_matches("/api/v1").to_owned())
            })
    })
    .await
    .expect("reader")
    .expect("the API address is printed");
    let client = reqwest::Client::new();
    let url = format!("http://{base}/api/v1/deliveries");

    let res = client.get(&url).send().await.expect("sent");
    assert_eq!(res.status(), 401);
    let res = client.get(&url).bearer_auth(&token).send().await.expect("sent");
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.expect("json");
    assert!(
        body["items"].is_array() && body.get("next_cursor").is_some(),
        "{body}"
    );
    let res = client
        .get(format!("http://{base}/api/v1/openapi.json"))
        .send()
        .await
        .expect("sent");
    assert_eq!(res.status(), 200);

    let pid = child.id().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("waiter")
        .expect("exits");
    assert!(status.success(), "exit status {status:?}");
    env.cleanup().await;
}
