//! docs/operations.md's two health samples are what the service answers:
//! a real `GET /health`, and `GET /health/database` 0.3 s after PostgreSQL
//! stopped. Numbers may differ (they are samples); keys, nesting, types and
//! words must not (digits in strings are normalised). A `"..."` key in the
//! doc marks an object it shortened: then only the keys it shows are
//! checked.

mod common;

use common::{Backend, Servers};
use pool_testkit::samples::normalise_digits as normalise;
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

/// The `json` block that follows `after` in the doc.
fn sample(doc: &str, after: &str) -> Value {
    let at = doc
        .find(after)
        .unwrap_or_else(|| panic!("docs/operations.md lacks {after:?}"));
    let json = doc[at..]
        .split("```json\n")
        .nth(1)
        .and_then(|j| j.split("\n```").next())
        .expect("a json block");
    serde_json::from_str(json)
        .unwrap_or_else(|e| panic!("the sample after {after:?} is not JSON: {e}"))
}

/// Where `printed` departs from `shown`, if anywhere.
fn compare(path: &str, printed: &Value, shown: &Value) -> Result<(), String> {
    match (printed, shown) {
        (Value::Object(p), Value::Object(s)) => {
            let shortened = s.contains_key("...");
            for (k, v) in s.iter().filter(|(k, _)| *k != "...") {
                let Some(pv) = p.get(k) else {
                    return Err(format!("{path}.{k}: in the doc, not printed"));
                };
                compare(&format!("{path}.{k}"), pv, v)?;
            }
            if !shortened {
                if let Some(k) = p.keys().find(|k| !s.contains_key(*k)) {
                    return Err(format!("{path}.{k}: printed, not in the doc"));
                }
            }
            Ok(())
        }
        (Value::Array(p), Value::Array(s)) if p.len() == s.len() => p
            .iter()
            .zip(s)
            .enumerate()
            .try_for_each(|(i, (p, s))| compare(&format!("{path}[{i}]"), p, s)),
        (Value::String(p), Value::String(s)) if normalise(p) == normalise(s) => Ok(()),
        (Value::Number(_), Value::Number(_)) | (Value::Null, Value::Null) => Ok(()),
        (Value::Bool(p), Value::Bool(s)) if p == s => Ok(()),
        _ => Err(format!("{path}: printed {printed}, the doc shows {shown}")),
    }
}

#[test]
fn operations_doc_health_samples_match_what_the_service_answers() {
    let doc_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/operations.md");
    let doc = std::fs::read_to_string(doc_path).unwrap();
    let healthy = sample(&doc, "A real `GET /health`");
    let stopped = sample(&doc, "after `pg_ctl stop -m fast`, `GET /health/database`");

    let mut servers = Servers::start();
    // As the doc says: HEALTH_TIMEOUT=2, the pool variables at their
    // defaults.
    let mut env = vec![
        ("PORT".to_string(), "0".to_string()),
        ("BIND_ADDRESS".into(), "127.0.0.1".into()),
        ("HEALTH_TIMEOUT".into(), "2".into()),
    ];
    env.extend(servers.env());
    let backend = Backend::spawn(common::command(&env));

    let resp = backend.get("/health");
    let body = resp.expect_json(200);
    if let Err(e) = compare("", &body, &healthy) {
        panic!(
            "GET /health differs from docs/operations.md: {e}\nprinted: {}",
            resp.body
        );
    }

    servers.pg.stop_fast().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let resp = backend.get("/health/database");
    let body = resp.expect_json(503);
    if let Err(e) = compare("", &body, &stopped) {
        panic!(
            "GET /health/database with PostgreSQL stopped differs from docs/operations.md: {e}\nprinted: {}",
            resp.body
        );
    }
}
