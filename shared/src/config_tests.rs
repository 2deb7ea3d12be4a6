//! Unit tests of the configuration: defaults, layering, the names of the keys in errors.

use super::*;

#[allow(clippy::result_large_err)] // figment::Jail fixes the closure's error type
fn load(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let owned: Vec<(String, String)> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let env = Config::env();
    // figment::Env reads the real environment; jail it.
    let mut result = None;
    figment::Jail::expect_with(|jail| {
        for (k, v) in &owned {
            jail.set_env(k, v);
        }
        result = Some(Config::load_from(None, env.clone()));
        Ok(())
    });
    result.unwrap_or_else(|| Err(ConfigError("jail did not run".into())))
}

#[test]
fn defaults_match_the_contract() {
    let c = load(&[]).expect("defaults load");
    assert_eq!(c.namespace, "hookrelay");
    assert_eq!(c.api_addr.to_string(), "127.0.0.1:8080");
    assert_eq!(c.max_event_bytes, 262_144);
    assert_eq!(c.retention.0, Duration::from_secs(30 * 86_400));
    assert_eq!(
        c.retry_policy(),
        RetryPolicy::Exponential {
            max_retries: 3,
            window: Duration::from_secs(1800)
        }
    );
}

#[test]
fn the_variables_other_readers_own_are_not_refused_any_other_unknown_one_is() {
    let c = load(&[
        ("HOOKRELAY_LISTEN_SECRET", "whsec_x"),
        ("HOOKRELAY_TEST_DATABASE_URL", "postgres://127.0.0.1:5432"),
    ]);
    assert!(c.is_ok(), "{c:?}");
    let e = load(&[("HOOKRELAY_LISTEN_SECRETS", "x")]).expect_err("a typo is refused");
    assert!(e.to_string().contains("HOOKRELAY_LISTEN_SECRETS"), "{e}");
}

#[test]
fn env_overrides_and_schedule_parses() {
    let c = load(&[
        ("HOOKRELAY_NAMESPACE", "t_1"),
        ("HOOKRELAY_RETRY_SCHEDULE", "1s,2s,4s"),
        ("HOOKRELAY_ALLOW_PRIVATE_TARGETS", "true"),
    ])
    .expect("loads");
    assert_eq!(c.namespace, "t_1");
    assert!(c.allow_private_targets);
    assert_eq!(
        c.retry_policy(),
        RetryPolicy::Schedule(vec![
            Duration::from_secs(1),
            Duration::from_secs(2),
            Duration::from_secs(4)
        ])
    );
}

#[test]
fn the_delivery_timeout_has_the_contract_name() {
    let c = load(&[("HOOKRELAY_DELIVERY_TIMEOUT", "3s")]).expect("loads");
    assert_eq!(c.request_timeout.0, Duration::from_secs(3));
    let err = load(&[("HOOKRELAY_DELIVERY_TIMEOUT", "0s")]).expect_err("rejected");
    assert!(err.to_string().contains("HOOKRELAY_DELIVERY_TIMEOUT"), "{err}");
}

#[test]
fn disable_after_takes_off() {
    let c = load(&[]).expect("defaults load");
    assert_eq!(c.disable_after.0, Some(Duration::from_secs(5 * 86_400)));
    let c = load(&[("HOOKRELAY_DISABLE_AFTER", "off")]).expect("loads");
    assert_eq!(c.disable_after.0, None);
    let c = load(&[("HOOKRELAY_DISABLE_AFTER", "2s")]).expect("loads");
    assert_eq!(c.disable_after.0, Some(Duration::from_secs(2)));
    let err = load(&[("HOOKRELAY_DISABLE_AFTER", "soon")]).expect_err("rejected");
    assert!(err.to_string().contains("HOOKRELAY_DISABLE_AFTER"), "{err}");
}

#[test]
fn up_allows_private_targets_only_by_default_on_loopback_and_never_against_an_explicit_false() {
    let c = load(&[]).expect("defaults");
    assert!(!c.allow_private_targets && !c.allow_private_targets_given);
    assert!(c.up_allows_private_targets(), "default, API on 127.0.0.1");
    let c = load(&[("HOOKRELAY_API_ADDR", "[::1]:8080")]).expect("loads");
    assert!(c.up_allows_private_targets(), "default, API on ::1");
    let c = load(&[("HOOKRELAY_ALLOW_PRIVATE_TARGETS", "false")]).expect("loads");
    assert!(c.allow_private_targets_given);
    assert!(
        !c.up_allows_private_targets(),
        "explicit false in the environment"
    );
    let c = load(&[("HOOKRELAY_API_ADDR", "0.0.0.0:8080")]).expect("loads");
    assert!(!c.up_allows_private_targets(), "default, API on every interface");
    let c = load(&[
        ("HOOKRELAY_API_ADDR", "0.0.0.0:8080"),
        ("HOOKRELAY_ALLOW_PRIVATE_TARGETS", "true"),
    ])
    .expect("loads");
    assert!(c.up_allows_private_targets(), "explicit true wins everywhere");
}

#[allow(clippy::result_large_err)] // figment::Jail fixes the closure's error type
fn load_file(toml: &str) -> Result<Config, ConfigError> {
    let mut result = None;
    figment::Jail::expect_with(|jail| {
        jail.create_file("hookrelay.toml", toml)?;
        let env = Env::prefixed("HOOKRELAY_").ignore(&["config"]);
        result = Some(Config::load_from(
            Some(jail.directory().join("hookrelay.toml")),
            env,
        ));
        Ok(())
    });
    result.unwrap_or_else(|| Err(ConfigError("jail did not run".into())))
}

#[test]
fn an_explicit_false_in_the_config_file_is_kept_by_up() {
    let c = load_file("allow_private_targets = false\n").expect("loads");
    assert!(c.allow_private_targets_given, "given in the file");
    assert!(!c.up_allows_private_targets());
    let c = load_file("namespace = \"other\"\n").expect("loads");
    assert_eq!(c.namespace, "other");
    assert!(
        !c.allow_private_targets_given,
        "a file without the key leaves it defaulted"
    );
    assert!(c.up_allows_private_targets());
}

#[test]
fn a_bad_value_names_the_key() {
    let err = load(&[("HOOKRELAY_RETRY_WINDOW", "soon")]).expect_err("rejected");
    assert!(err.to_string().contains("HOOKRELAY_RETRY_WINDOW"), "{err}");
    let err = load(&[("HOOKRELAY_API_ADDR", "nowhere")]).expect_err("rejected");
    assert!(err.to_string().contains("HOOKRELAY_API_ADDR"), "{err}");
    let err = load(&[("HOOKRELAY_NAMESPACE", "a b")]).expect_err("rejected");
    assert!(err.to_string().contains("HOOKRELAY_NAMESPACE"), "{err}");
}

#[test]
fn retry_settings_longer_than_the_retention_are_refused_naming_the_key() {
    for (vars, key) in [
        (
            vec![("HOOKRELAY_RETRY_WINDOW", "3000000d")],
            "HOOKRELAY_RETRY_WINDOW",
        ),
        (
            vec![("HOOKRELAY_RETRY_SCHEDULE", "1s,31d")],
            "HOOKRELAY_RETRY_SCHEDULE",
        ),
        (vec![("HOOKRELAY_RETRY_MAX", "100000")], "HOOKRELAY_RETRY_MAX"),
    ] {
        let err = load(&vars).expect_err(key);
        assert!(err.to_string().contains(key), "{err}");
    }
    let c = load(&[("HOOKRELAY_RETENTION", "60d"), ("HOOKRELAY_RETRY_WINDOW", "45d")]).expect("loads");
    assert_eq!(c.retry_window.0, Duration::from_secs(45 * 86_400));
}
