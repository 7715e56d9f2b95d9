//! The `relay` binary: configuration is validated before anything binds, and `relay token` mints
//! tokens the node accepts.

mod common;

use std::process::Command;

use assist_relay::auth::Auth;
use assist_relay_proto::Role;
use common::SECRET;

fn relay(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_relay"))
        .args(args)
        .env("RELAY_JWT_SECRET", SECRET)
        .env_remove("RELAY_REDIS_URL")
        .output()
        .expect("relay runs")
}

#[test]
fn invalid_configuration_exits_64_before_binding() {
    for bad in [
        vec!["serve", "--ping-interval", "0s"],
        vec!["serve", "--idle-timeout", "10s", "--ping-interval", "20s"],
        vec!["serve", "--max-frame-bytes", "10"],
        vec![
            "serve",
            "--listen",
            "127.0.0.1:9999",
            "--admin-listen",
            "127.0.0.1:9999",
        ],
    ] {
        let out = relay(&bad);
        assert_eq!(
            out.status.code(),
            Some(64),
            "{bad:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stderr).contains("invalid configuration"));
    }
}

#[test]
fn relay_token_mints_a_token_for_the_room_role_and_participant() {
    let out = relay(&[
        "token", "--room", "r-1", "--role", "agent", "--sub", "alice", "--ttl", "60",
    ]);
    assert!(out.status.success());
    let token = String::from_utf8(out.stdout).expect("utf8");
    let claims = Auth::new(SECRET.as_bytes())
        .verify(token.trim())
        .expect("the node accepts it");
    assert_eq!(
        (claims.room.as_str(), claims.role, claims.sub.as_str()),
        ("r-1", Role::Agent, "alice")
    );
    let bad = relay(&[
        "token",
        "--room",
        "bad{room}",
        "--role",
        "agent",
        "--sub",
        "a",
    ]);
    assert_eq!(bad.status.code(), Some(64));
}

#[test]
fn relay_token_signs_with_a_kid_and_registered_claims() {
    let out = relay(&[
        "token",
        "--room",
        "r-1",
        "--role",
        "customer",
        "--sub",
        "c",
        "--kid",
        "k2",
        "--aud",
        "assist-relay",
        "--iss",
        "backend",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).expect("utf8");
    let auth = Auth::with_keys(None, &[("k2".into(), SECRET.as_bytes().to_vec())]).with_policy(
        assist_relay::auth::TokenPolicy {
            audience: Some("assist-relay".into()),
            issuer: Some("backend".into()),
            ..Default::default()
        },
    );
    auth.verify(token.trim()).expect("verified with key k2");
    assert_eq!(
        Auth::new(SECRET.as_bytes())
            .verify(token.trim())
            .map(|_| ()),
        Err(assist_relay::auth::RejectReason::TokenUnknownKey),
        "a kid token is not verified with the default key"
    );
}

#[test]
fn key_flags_are_validated_and_secrets_stay_out_of_help() {
    for bad in [
        vec!["serve", "--jwt-keys", "no-equals-sign"],
        vec!["serve", "--jwt-keys", "k1="],
        vec!["serve", "--jwt-keys", "k1=a,k1=b"],
        vec!["serve", "--jwt-keys", "bad/kid=secret"],
        vec!["serve", "--max-token-lifetime", "0s"],
        vec!["serve", "--mask-key", "short"],
    ] {
        let out = relay(&bad);
        assert_eq!(
            out.status.code(),
            Some(64),
            "{bad:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = Command::new(env!("CARGO_BIN_EXE_relay"))
        .args(["serve", "--help"])
        .env("RELAY_JWT_SECRET", "secret-value-one")
        .env("RELAY_JWT_KEYS", "k2=secret-value-two")
        .env("RELAY_MASK_KEY", "secret-value-three")
        .output()
        .expect("relay runs");
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--jwt-keys",
        "--mask-key",
        "--max-token-lifetime",
        "--jwt-audience",
    ] {
        assert!(help.contains(flag), "{flag} in --help");
    }
    assert!(!help.contains("secret-value"), "{help}");
}

/// Secret values from the environment never appear in `--help`.
#[test]
fn help_hides_secret_values_from_the_environment() {
    for sub in ["serve", "compactor", "token"] {
        let out = Command::new(env!("CARGO_BIN_EXE_relay"))
            .args([sub, "--help"])
            .env("RELAY_REDIS_URL", "redis://:s3cret@127.0.0.1:1")
            .env("RELAY_JWT_SECRET", "jwt-s3cret-jwt-s3cret-jwt-s3cret")
            .env("RELAY_API_KEY", "api-s3cret-api-s3cret")
            .env("RELAY_TURN_SECRET", "turn-s3cret")
            .env(
                "RELAY_ICE_SERVERS",
                r#"[{"urls":"turn:t.example:3478","username":"u","credential":"ice-s3cret"}]"#,
            )
            .output()
            .expect("relay runs");
        assert!(out.status.success(), "relay {sub} --help");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("RELAY_"),
            "relay {sub} --help names its variables"
        );
        assert!(
            !text.contains("s3cret"),
            "relay {sub} --help shows a secret:\n{text}"
        );
    }
}

/// A node and a compactor that cannot log in to Redis say so without printing the password.
#[test]
fn the_redis_password_never_reaches_the_log() {
    use std::io::Read;
    let port = common::free_port();
    struct Killed(std::process::Child);
    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _redis = Killed(
        Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--requirepass",
                "the-right-one",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("redis-server runs"),
    );
    let url = format!("redis://:s3cret@127.0.0.1:{port}");
    let admin = format!("127.0.0.1:{}", common::free_port());
    let listen = format!("127.0.0.1:{}", common::free_port());
    for (args, format) in [
        (
            vec!["serve", "--listen", &listen, "--admin-listen", &admin],
            "json",
        ),
        (vec!["compactor", "--admin-listen", &admin], "pretty"),
    ] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_relay"))
            .args(&args)
            .args(["--log-format", format])
            .env("RELAY_JWT_SECRET", SECRET)
            .env("RELAY_REDIS_URL", &url)
            .env("RELAY_LOG", "debug")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("relay runs");
        std::thread::sleep(std::time::Duration::from_millis(2500));
        let _ = child.kill();
        let mut out = String::new();
        let _ = child
            .stdout
            .take()
            .expect("stdout")
            .read_to_string(&mut out);
        let _ = child
            .stderr
            .take()
            .expect("stderr")
            .read_to_string(&mut out);
        let _ = child.wait();
        assert!(
            out.contains(&format!("redis://:***@127.0.0.1:{port}")),
            "{args:?}: the URL is logged, redacted:\n{out}"
        );
        assert!(
            out.contains("not reachable yet"),
            "{args:?}: the failure is logged:\n{out}"
        );
        assert!(
            !out.contains("s3cret"),
            "{args:?}: the password is logged:\n{out}"
        );
    }
}

#[test]
fn page_class_names_with_white_space_are_refused() {
    for flag in [
        "--mask-block-class",
        "--mask-text-class",
        "--mask-ignore-class",
    ] {
        let out = relay(&["serve", flag, "ok,two words"]);
        assert_eq!(
            out.status.code(),
            Some(64),
            "{flag}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// `relay serve` and `relay token` take the secret under one name (`--jwt-secret`, or
/// `RELAY_JWT_SECRET`; `token --secret` still works), and without one both say both names.
#[test]
fn the_secret_has_one_name_and_a_missing_one_is_named() {
    for args in [
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ][..],
        &["token", "--room", "r", "--role", "agent", "--sub", "a"][..],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_relay"))
            .args(args)
            .env_remove("RELAY_JWT_SECRET")
            .env_remove("RELAY_JWT_KEYS")
            .env_remove("RELAY_REDIS_URL")
            .output()
            .expect("relay runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{args:?}: {stderr}");
        assert!(stderr.contains("--jwt-secret"), "{args:?}: {stderr}");
        assert!(stderr.contains("RELAY_JWT_SECRET"), "{args:?}: {stderr}");
    }
    for flag in ["--jwt-secret", "--secret"] {
        let out = Command::new(env!("CARGO_BIN_EXE_relay"))
            .args([
                "token", flag, SECRET, "--room", "r", "--role", "agent", "--sub", "a",
            ])
            .env_remove("RELAY_JWT_SECRET")
            .output()
            .expect("relay runs");
        assert!(
            out.status.success(),
            "{flag}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            String::from_utf8_lossy(&out.stdout).starts_with("eyJ"),
            "{flag}"
        );
    }
}
