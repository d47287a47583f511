//! The offline CLI as the real binary: `reward quote --input FILE --policies DIR` prints what
//! the endpoint answers; `policy check DIR` accepts the shipped directory and refuses a
//! broken copy naming the file and the key.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::{Value, json};

use crate::harness::{Engine, POLICIES, spawn};
use crate::quote::quote_body;

fn run(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_reporter-vault"))
        .args(args)
        .current_dir(dir)
        .env_remove("RV_POLICIES")
        .env_remove("RV_DATABASE_URL")
        .output()
        .expect("run reporter-vault")
}

async fn cli_quote_matches_endpoint(engine: Engine) {
    let app = spawn(engine).await;
    let fin = app.principal("finance", "000000", "财务").await;
    let work = tempfile::tempdir().expect("tempdir");
    let cases = [
        quote_body(
            "370100",
            "hazardous_chemicals",
            None,
            json!({"kind": "major_hazard", "penalty": "100000.00"}),
            false,
            false,
            false,
        ),
        quote_body(
            "370100",
            "hazardous_chemicals",
            None,
            json!({"kind": "major_hazard", "penalty": "100000.00"}),
            true,
            false,
            false,
        ),
        quote_body(
            "110105",
            "other",
            None,
            json!({"kind": "major_hazard", "penalty": "123456.78"}),
            false,
            false,
            false,
        ),
        quote_body(
            "110105",
            "other",
            Some("cn-national-2018"),
            json!({"kind": "major_hazard", "penalty": "100000.00"}),
            false,
            true,
            false,
        ),
        quote_body(
            "440309",
            "other",
            None,
            json!({"kind": "general_hazard"}),
            false,
            false,
            false,
        ),
    ];
    for (i, body) in cases.iter().enumerate() {
        let http = app
            .post("/v1/rewards/quote", &fin.token, body.clone())
            .await
            .ok(200, "quote");
        let file = work.path().join(format!("q{i}.json"));
        std::fs::write(&file, serde_json::to_vec(body).unwrap()).unwrap();
        let out = run(
            &[
                "reward",
                "quote",
                "--input",
                file.to_str().unwrap(),
                "--policies",
                POLICIES,
            ],
            work.path(),
        );
        assert!(
            out.status.success(),
            "reward quote {i} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let cli: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "reward quote printed no JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        });
        assert_eq!(
            cli, http,
            "case {i}: the CLI prints what the endpoint answers"
        );
    }

    // A request the endpoint refuses with 422 makes the CLI fail naming the problem.
    let bad = quote_body(
        "370100",
        "other",
        Some("no-such-policy"),
        json!({"kind": "major_hazard", "penalty": "1.00"}),
        false,
        false,
        false,
    );
    let file = work.path().join("bad.json");
    std::fs::write(&file, serde_json::to_vec(&bad).unwrap()).unwrap();
    let out = run(
        &[
            "reward",
            "quote",
            "--input",
            file.to_str().unwrap(),
            "--policies",
            POLICIES,
        ],
        work.path(),
    );
    assert!(!out.status.success(), "an unknown policy fails the CLI");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no-such-policy"), "{stderr}");
}

both_engines!(cli_quote_matches_endpoint);

fn copy_policies(to: &Path) {
    for e in std::fs::read_dir(POLICIES).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
        }
    }
}

#[test]
fn policy_check_shipped_and_broken() {
    let work = tempfile::tempdir().expect("tempdir");
    let out = run(&["policy", "check", POLICIES], work.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "policy check on the shipped directory: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("shandong-2022"), "{stdout}");
    assert!(stdout.contains("policies valid"), "{stdout}");

    // A copy where Shandong's major-hazard cap is below its floor.
    let dir = work.path().join("policies");
    std::fs::create_dir(&dir).unwrap();
    copy_policies(&dir);
    let file = dir.join("shandong-2022.toml");
    let text = std::fs::read_to_string(&file).unwrap();
    let broken = text.replacen("cap = \"500000.00\"", "cap = \"2000.00\"", 1);
    assert_ne!(broken, text);
    std::fs::write(&file, broken).unwrap();
    let out = run(&["policy", "check", dir.to_str().unwrap()], work.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a broken policy fails the check");
    assert!(
        stderr.contains("shandong-2022.toml"),
        "names the file: {stderr}"
    );
    assert!(
        stderr.contains("rules.major_hazard.cap"),
        "names the key: {stderr}"
    );
    assert!(
        stderr.contains("2000.00") && stderr.contains("5000.00"),
        "says the problem: {stderr}"
    );

    // An unknown key is an error too, named.
    std::fs::write(&file, format!("{text}\nbonus = \"1.00\"\n")).unwrap();
    let out = run(&["policy", "check", dir.to_str().unwrap()], work.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "an unknown key fails the check");
    assert!(
        stderr.contains("shandong-2022.toml") && stderr.contains("bonus"),
        "{stderr}"
    );
}
