//! `docs/configuration.md` shows the variable table as the code has it.

use pool_core::settings::vars::reference_table;

#[test]
fn the_configuration_reference_is_the_variable_table() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/configuration.md");
    let doc = std::fs::read_to_string(path).unwrap();
    let start = "<!-- settings-table: generated from pool_core::settings::vars::VARS; a test keeps it in step -->\n";
    let end = "<!-- /settings-table -->";
    let from = doc.find(start).expect("start marker") + start.len();
    let to = doc[from..].find(end).expect("end marker") + from;
    let expected = reference_table("DB_");
    if doc[from..to] != expected {
        if std::env::var_os("UPDATE_DOCS").is_some() {
            let updated = format!("{}{expected}{}", &doc[..from], &doc[to..]);
            std::fs::write(path, updated).unwrap();
        }
        panic!(
            "docs/configuration.md's table differs from VARS; rerun with UPDATE_DOCS=1 to rewrite it:\n{expected}"
        );
    }
}
