//! Integrity sync of `etc/{rules,decoders,lists,shared}` from the master to the workers.
//!
//! `meta` is pure (paths, diff, metadata encoding); `scan` (hashing walk), `bundle` (transfer
//! pieces) and `apply` (atomic writes on the worker) do the I/O.
//!
//! One round: worker `Scanner::scan` -> `encode_meta` -> master `decode_meta` + `diff` against
//! its own scan -> worker `remove_extras`, then for each `plan_pieces` piece the master does
//! `read_files` + `encode_piece` and the worker `decode_piece` + `apply_piece`.

pub mod apply;
pub mod bundle;
mod dirs;
pub mod meta;
pub mod scan;

pub use apply::{apply_piece, remove_extra, remove_extras, write_file, ApplyError, ApplyReport};
pub use bundle::{
    decode_piece, encode_piece, plan_pieces, read_files, BundleError, FileData, DEFAULT_PIECE,
};
pub use meta::{
    decode_meta, diff, encode_meta, is_synced_name, validate_rel, Diff, FileMeta, MetaError,
    Metadata, PathError, SYNCED_DIRS,
};
pub use scan::{ScanStats, Scanner};

/// Wazuh's log line for an integrity result.
pub fn summary(d: &Diff) -> String {
    format!(
        "Files to create: {} | Files to update: {} | Files to delete: {}",
        d.missing.len(),
        d.changed.len(),
        d.extra.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_wording() {
        let d = Diff {
            missing: vec!["rules/a".into(), "rules/b".into()],
            changed: vec!["lists/c".into()],
            extra: vec![],
        };
        assert_eq!(
            summary(&d),
            "Files to create: 2 | Files to update: 1 | Files to delete: 0"
        );
    }
}
