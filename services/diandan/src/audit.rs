//! `diandan audit`: verify a log (online against a live store, or offline against a data
//! dir), verify an export with nothing but the public key, print the key, sign a checkpoint.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use diandan_audit::checkpoint::{encode_public_key, parse_public_key};
use diandan_audit::verify::{HeldCheckpoint, Report, Verifier};
use diandan_audit::Checkpoint;
use diandan_store::EventStore;
use ed25519_dalek::VerifyingKey;
use indicatif::{ProgressBar, ProgressStyle};

/// Events read per page while verifying.
const PAGE: usize = 4096;

/// The public key a `--key` names: the key itself (base64), or a file holding it.
pub fn public_key(text: &str) -> anyhow::Result<VerifyingKey> {
    let path = Path::new(text);
    let written = if path.is_file() {
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?
    } else {
        text.to_owned()
    };
    parse_public_key(&written).map_err(|e| anyhow::anyhow!("--key: {e}"))
}

/// The public key of the system whose data dir this is (its `audit.key`).
pub fn own_public_key(data_dir: &Path) -> anyhow::Result<VerifyingKey> {
    let key = diandan_runtime::secrets::existing_audit_key(data_dir)?;
    Ok(key.verifying_key())
}

/// `diandan audit key`: the public key, as auditors give it to `--key`.
pub fn print_key(data_dir: &Path) -> anyhow::Result<String> {
    Ok(encode_public_key(&own_public_key(data_dir)?))
}

/// Checkpoints held in a file: one checkpoint (JSON), the API's answer (`{"checkpoint": …}`),
/// or one per line (`checkpoints.jsonl`).
pub fn read_checkpoints(path: &Path) -> anyhow::Result<Vec<HeldCheckpoint>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let source = path.display().to_string();
    let parse = |text: &str| -> Option<Checkpoint> {
        let value: serde_json::Value = serde_json::from_str(text).ok()?;
        let value = value.get("checkpoint").cloned().unwrap_or(value);
        serde_json::from_value(value).ok()
    };
    let held = |checkpoint| HeldCheckpoint {
        checkpoint,
        source: source.clone(),
    };
    if let Some(one) = parse(&text) {
        return Ok(vec![held(one)]);
    }
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .enumerate()
        .map(|(i, line)| {
            parse(line)
                .map(held)
                .with_context(|| format!("{}:{}: not a diandan checkpoint", path.display(), i + 1))
        })
        .collect()
}

/// What `audit verify` checks a log against.
#[derive(Debug, Clone)]
pub struct VerifyArgs {
    pub data_dir: PathBuf,
    /// The system's public key; default: the data dir's own.
    pub key: Option<VerifyingKey>,
    /// Checkpoints an auditor kept outside the system.
    pub held: Vec<PathBuf>,
    /// Show a progress bar (on a terminal).
    pub progress: bool,
}

/// Walks the whole log of `store` once against the data dir's witness and every checkpoint.
pub async fn verify(store: &dyn EventStore, args: &VerifyArgs) -> anyhow::Result<Report> {
    let key = match args.key {
        Some(key) => key,
        None => own_public_key(&args.data_dir)?,
    };
    let (witness, signed) = diandan_audit::witness::read_witness(&args.data_dir)?;
    let mut checkpoints: Vec<HeldCheckpoint> = signed
        .into_iter()
        .map(|checkpoint| HeldCheckpoint {
            checkpoint,
            source: "audit.db".into(),
        })
        .collect();
    for path in &args.held {
        checkpoints.extend(read_checkpoints(path)?);
    }
    let mut verifier = Verifier::new(&key, checkpoints, witness);
    let head = store.head_position().await?;
    let bar = if args.progress {
        ProgressBar::new(head)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:40} 位置 {pos}/{len} ({per_sec}, 剩余 {eta})")
            .expect("valid template"),
    );
    let mut from = 1;
    loop {
        let page = store.read_all(from, PAGE).await?;
        let Some(last) = page.last() else { break };
        from = last.position + 1;
        for event in &page {
            verifier.push(event);
        }
        bar.set_position(from - 1);
    }
    bar.finish_and_clear();
    Ok(verifier.finish())
}

/// The report for people: a summary line, then one line per finding.
pub fn describe(report: &Report) -> String {
    let mut out = format!(
        "核验 {} 个事件（{} 个流），{} 个检查点；日志根 {}\n",
        report.events, report.streams, report.checkpoints, report.root
    );
    if report.findings.is_empty() {
        out.push_str("未发现篡改：每条哈希链和每个检查点都与日志一致。\n");
    } else {
        out.push_str(&format!("发现 {} 处问题：\n", report.findings.len()));
        for finding in &report.findings {
            out.push_str(&format!("  - {finding}\n"));
        }
    }
    out
}
