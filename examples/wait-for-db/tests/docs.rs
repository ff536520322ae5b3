//! docs/operations.md shows the real compose file, Dockerfile and `--help`.

mod common;

use std::path::Path;

fn read(rel: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn operations_doc_quotes_the_files_verbatim() {
    let doc = read("../../docs/operations.md");
    for (name, text) in [
        ("docs/compose.yaml", read("../../docs/compose.yaml")),
        ("Dockerfile", read("Dockerfile")),
    ] {
        assert!(
            doc.contains(&text),
            "docs/operations.md does not quote the current {name}"
        );
    }
    let help = common::run(&["--help"]);
    help.expect_code(0);
    assert!(
        doc.contains(&help.stdout),
        "docs/operations.md does not show the current --help:\n{}",
        help.stdout
    );
    assert!(doc.contains("\n## Health endpoints and metrics\n"));
}
