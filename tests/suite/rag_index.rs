//! `stylevn embed-catalog` as cron runs it: incremental updates, the lock, SIGKILL in
//! the middle of a run, concurrent runs, and bad catalog rows.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{fetched, root};
use stylevn::rag::index::current_generation;
use stylevn::rag::{Index, IndexLock, SearchMode, SearchOptions, Searcher};

/// Exit status of a run that finds the index locked.
const EXIT_LOCKED: i32 = 75;

fn fixtures() -> PathBuf {
    root().join("tests/fixtures/catalog")
}

fn minilm() -> String {
    fetched("all-minilm-l6-v2").display().to_string()
}

fn embed(catalog: &Path, index: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stylevn"))
        .args(["embed-catalog", "--config", "/dev/null", "--catalog"])
        .arg(catalog)
        .arg("--policies")
        .arg(fixtures().join("policies"))
        .args(["--model", &minilm(), "--index"])
        .arg(index)
        .args(["--json"])
        .args(extra)
        .output()
        .expect("run stylevn")
}

fn summary(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "status {:?}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.trim().lines().last().expect("a summary line")).expect("JSON summary")
}

/// A catalog of `n` products written to `path`, with `changed` rows' descriptions altered.
fn write_catalog(path: &Path, n: usize, changed: &[usize]) {
    let mut csv = String::from("sku,name,category,price_vnd,sizes,colors,stock,description\n");
    for i in 0..n {
        let extra = if changed.contains(&i) { " Phiên bản mới 2025." } else { "" };
        csv += &format!(
            "SP{i:04},Áo thun mẫu {i},áo thun,{},S|M|L,Trắng|Đen,{},\"Áo thun cotton mẫu số {i}, thoáng mát, dễ phối đồ.{extra}\"\n",
            100_000 + i * 1000,
            i % 7
        );
    }
    std::fs::write(path, csv).unwrap();
}

#[test]
fn rerun_embeds_nothing_and_changes_reembed_only_those() {
    let tmp = tempfile::tempdir().unwrap();
    let (catalog, index) = (tmp.path().join("catalog.csv"), tmp.path().join("index"));
    write_catalog(&catalog, 100, &[]);
    let first = summary(&embed(&catalog, &index, &[]));
    let n_policies = 4u64;
    assert_eq!(first["added"], 100 + n_policies);
    assert_eq!(first["full_rebuild"], true);

    let again = summary(&embed(&catalog, &index, &[]));
    assert_eq!(
        (again["added"].as_u64(), again["updated"].as_u64(), again["deleted"].as_u64()),
        (Some(0), Some(0), Some(0))
    );
    assert_eq!(again["unchanged"], 100 + n_policies);
    assert_eq!(again["published"], false, "nothing changed: no new generation");
    assert_eq!(again["embedded"], 0);
    assert_eq!(again["generation"], first["generation"]);

    // 1% of the rows change, one row disappears.
    write_catalog(&catalog, 99, &[42]);
    let inc = summary(&embed(&catalog, &index, &[]));
    assert_eq!((inc["added"].as_u64(), inc["updated"].as_u64(), inc["deleted"].as_u64()), (Some(0), Some(1), Some(1)));
    assert_eq!(inc["unchanged"], 98 + n_policies);
    assert_eq!(inc["embedded"], 1, "only the changed row is re-embedded");
    let ix = Index::open(&index).unwrap();
    assert_eq!(ix.docs.len() as u64, 99 + n_policies);
    assert!(ix.docs.iter().find(|d| d.id == "SP0042").unwrap().text.contains("Phiên bản mới"));

    // Reused vectors are the ones --full computes.
    let full = summary(&embed(&catalog, &index, &["--full"]));
    assert_eq!((full["added"].as_u64(), full["unchanged"].as_u64()), (Some(0), Some(99 + n_policies)));
    assert_eq!(full["full_rebuild"], true);
    assert_eq!(full["embedded"], 99 + n_policies);
    let rebuilt = Index::open(&index).unwrap();
    for (a, b) in ix.vectors.iter().zip(&rebuilt.vectors) {
        assert!((a - b).abs() < 1e-5);
    }
    // Only the live and the previous generations stay on disk.
    let gens = std::fs::read_dir(&index)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with("gen-"))
        .count();
    assert_eq!(gens, 2);
}

#[test]
fn a_held_lock_makes_the_second_run_exit_75_and_change_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let index = tmp.path().join("index");
    let catalog = fixtures().join("catalog.csv");
    summary(&embed(&catalog, &index, &[]));
    let before = current_generation(&index).unwrap();
    let lock = IndexLock::try_acquire(&index).unwrap().expect("free lock");
    let out = embed(&catalog, &index, &["--full"]);
    assert_eq!(out.status.code(), Some(EXIT_LOCKED));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("another run") && stderr.contains(&format!("pid {}", std::process::id())), "{stderr}");
    assert_eq!(current_generation(&index).unwrap(), before);
    drop(lock);
    assert!(embed(&catalog, &index, &["--full"]).status.success());
}

#[test]
fn sigkill_mid_run_leaves_the_previous_index_usable() {
    let tmp = tempfile::tempdir().unwrap();
    let (catalog, index) = (tmp.path().join("catalog.csv"), tmp.path().join("index"));
    write_catalog(&catalog, 20, &[]);
    summary(&embed(&catalog, &index, &[]));
    let before = Index::open(&index).unwrap();

    // A long full rebuild, killed at several points of its life.
    write_catalog(&catalog, 1500, &[]);
    for delay_ms in [50u64, 400, 1500] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_stylevn"))
            .args(["embed-catalog", "--config", "/dev/null", "--quiet", "--full", "--catalog"])
            .arg(&catalog)
            .args(["--model", &minilm(), "--index"])
            .arg(&index)
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        child.kill().unwrap(); // SIGKILL on unix
        child.wait().unwrap();
        let after = Index::open(&index).unwrap();
        if after.generation() == before.generation() {
            assert_eq!(after.docs, before.docs);
            assert_eq!(after.vectors, before.vectors);
        } else {
            assert_eq!(after.docs.len(), 1500, "a new generation is only ever complete");
        }
        let hits = Searcher::new(after)
            .search(None, "ao thun mau 7", &SearchOptions { k: 3, mode: SearchMode::Bm25, ..Default::default() })
            .unwrap();
        assert!(!hits.is_empty());
    }
    // The next run cleans the killed runs' leftovers and takes the lock (the kernel freed it).
    write_catalog(&catalog, 20, &[3]);
    let s = summary(&embed(&catalog, &index, &[]));
    assert_eq!(s["published"], true);
    let leftovers: Vec<_> = std::fs::read_dir(&index)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn concurrent_runs_never_corrupt_the_index() {
    let tmp = tempfile::tempdir().unwrap();
    let index = tmp.path().join("index");
    let catalogs: Vec<PathBuf> = (0..2)
        .map(|k| {
            let p = tmp.path().join(format!("catalog{k}.csv"));
            write_catalog(&p, 60 + k * 10, &[k]);
            p
        })
        .collect();
    for _round in 0..3 {
        let children: Vec<_> = catalogs
            .iter()
            .map(|c| {
                Command::new(env!("CARGO_BIN_EXE_stylevn"))
                    .args(["embed-catalog", "--config", "/dev/null", "--json", "--full", "--catalog"])
                    .arg(c)
                    .args(["--model", &minilm(), "--index"])
                    .arg(&index)
                    .output_async()
            })
            .collect();
        let codes: Vec<i32> =
            children.into_iter().map(|c| c.wait_with_output().unwrap().status.code().unwrap()).collect();
        assert!(codes.iter().all(|&c| c == 0 || c == EXIT_LOCKED), "{codes:?}");
        assert!(codes.contains(&0), "{codes:?}");
        let ix = Index::open(&index).unwrap();
        assert!(ix.docs.len() == 60 || ix.docs.len() == 70, "{}", ix.docs.len());
        assert_eq!(ix.vectors.len(), ix.docs.len() * ix.manifest.dim);
        assert_eq!(ix.manifest.documents.len(), ix.docs.len());
    }
}

trait SpawnOutput {
    fn output_async(&mut self) -> std::process::Child;
}

impl SpawnOutput for Command {
    fn output_async(&mut self) -> std::process::Child {
        self.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap()
    }
}

#[test]
fn bad_rows_fail_unless_skipped_and_duplicates_always_fail() {
    let tmp = tempfile::tempdir().unwrap();
    let index = tmp.path().join("index");
    let bad = fixtures().join("bad_rows.csv");
    let out = embed(&bad, &index, &[]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bad_rows.csv:3: missing SKU"), "{stderr}");
    assert!(stderr.contains("bad_rows.csv:4: SKU AT09: unparseable price"), "{stderr}");
    assert!(current_generation(&index).unwrap().is_none(), "nothing published");

    let s = summary(&embed(&bad, &index, &["--skip-bad-rows"]));
    assert_eq!(s["bad_rows_skipped"], 2);
    assert_eq!(s["added"], 1 + 4);

    let out = embed(&fixtures().join("duplicate_sku.csv"), &index, &["--skip-bad-rows"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("duplicate_sku.csv:4") && stderr.contains("line 2"), "{stderr}");
}

#[test]
fn jsonl_catalog_gives_the_same_documents_as_csv() {
    use stylevn::rag::chunk::{product_documents, ChunkOptions};
    use stylevn::rag::ingest::{read_catalog, ColumnMap};
    let cols = ColumnMap::default();
    let csv = read_catalog(&fixtures().join("catalog.csv"), &cols).unwrap();
    let jsonl = read_catalog(&fixtures().join("catalog.jsonl"), &cols).unwrap();
    assert_eq!(csv.products.len(), 10);
    assert!(csv.bad.is_empty() && jsonl.bad.is_empty());
    let texts = |c: &stylevn::rag::ingest::Catalog| -> Vec<String> {
        c.products.iter().flat_map(|p| product_documents(p, &ChunkOptions::default())).map(|d| d.text).collect()
    };
    assert_eq!(texts(&csv), texts(&jsonl));
    assert_eq!(csv.products[1].price_vnd, 520_000);
    assert_eq!(csv.products[4].price_vnd, 490_000);
    assert_eq!(csv.products[1].stock, Some(0));
}
