//! Fuzzes the URL grammar and the redaction (`pool_core::url`,
//! `pool_core::redact`): any input parses or fails without panicking, and a
//! password made from the input, written in every form, never shows in
//! `redact_url`, `SecretUrl`, `ConnUrl`'s `Display`/`Debug`/target, or a
//! parse error.
//!
//! The password interleaves the marker `Zq` with chunks of the input (with
//! `Z` removed), so any leaked run of it contains the marker.

#![no_main]

use libfuzzer_sys::fuzz_target;
use pool_core::redact::{redact_url, SecretUrl};
use pool_core::url::{percent, ConnUrl};

const MARK: &str = "Zq";

fn password(data: &str) -> String {
    let chars: Vec<char> = data.chars().filter(|&c| c != 'Z').collect();
    let mut pw = String::from(MARK);
    for chunk in chars.chunks(3) {
        pw.extend(chunk);
        pw.push_str(MARK);
    }
    pw
}

fn check(input: &str) {
    let shown = redact_url(input);
    assert!(!shown.contains(MARK), "redact_url({input:?}) = {shown:?}");
    let secret = SecretUrl::new(input);
    assert!(!format!("{secret} {secret:?}").contains(MARK), "{input:?}");
    match ConnUrl::parse(input) {
        Ok(url) => {
            let all = format!("{url} {url:?} {}", url.target());
            assert!(!all.contains(MARK), "{input:?} -> {all:?}");
        }
        Err(e) => assert!(!format!("{e} {e:?}").contains(MARK), "{input:?} -> {e}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // Anything at all: no panic.
    let _ = ConnUrl::parse(&text);
    let _ = redact_url(&text);
    // A password from the input, in every form.
    let pw = password(&text);
    let enc = percent::encode(pw.as_bytes());
    let quoted = format!("'{}'", pw.replace('\\', "\\\\").replace('\'', "\\'"));
    for input in [
        format!("postgres://app:{enc}@db:5432/app"),
        format!("postgres://app:{pw}@db1:5432,db2/app"),
        format!("postgres://app@db/app?password={enc}&sslmode=disable"),
        format!("host=db user=app password={quoted} dbname=app"),
        format!("host=db password = {quoted} sslpassword={quoted}"),
        format!("redis://alice:{enc}@cache:6379/1"),
        format!("redis://:{pw}@cache"),
        format!("unix:///run/redis.sock?db=1&pass={enc}"),
        format!("cannot connect to postgres://app:{pw}@db/app: refused"),
    ] {
        check(&input);
    }
});
