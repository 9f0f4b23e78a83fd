//! Report files are replaced, never rewritten in place: each is written to a
//! temporary file beside its target, flushed to disk, and renamed over the
//! target only when every file of the set is written. A write that fails
//! (disk full, permission denied, a directory where a file should be)
//! leaves the previous report as it was, and its error names the file.
//!
//! Also here: [`claim_dir`], which takes a fresh directory for a run's
//! default output, so two runs started in the same second never share one.

use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::ReportError;

/// Suffixes [`claim_dir`] tries (`-2` … `-MAX_CLAIMS`) before giving up.
const MAX_CLAIMS: u32 = 1000;

/// Distinguishes the temporary files of concurrent writers in one process.
static NEXT_TMP: AtomicU64 = AtomicU64::new(0);

fn io_error(path: &Path, source: io::Error) -> ReportError {
    ReportError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A file written and synced beside its target, not yet renamed over it.
/// Dropped without [`commit_all`], it removes its temporary file.
#[derive(Debug)]
pub(crate) struct Staged {
    tmp: PathBuf,
    target: PathBuf,
}

impl Drop for Staged {
    fn drop(&mut self) {
        // Committed files no longer exist under `tmp`; otherwise this is the
        // cleanup of an abandoned write, and its own failure has no one to
        // report to.
        let _ = fs::remove_file(&self.tmp);
    }
}

/// Write `target`'s new content through `fill` into a temporary file in
/// the same directory and sync it. Nothing at `target` changes yet.
pub(crate) fn stage_with<F>(target: &Path, fill: F) -> Result<Staged, ReportError>
where
    F: FnOnce(&mut BufWriter<File>) -> Result<(), ReportError>,
{
    let name = target.file_name().ok_or_else(|| {
        io_error(
            target,
            io::Error::new(io::ErrorKind::InvalidInput, "not a file name"),
        )
    })?;
    let mut tmp_name = OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(
        ".tmp-{}-{}",
        std::process::id(),
        NEXT_TMP.fetch_add(1, Ordering::Relaxed)
    ));
    let tmp = target.with_file_name(tmp_name);
    let file = File::create_new(&tmp).map_err(|e| io_error(target, e))?;
    // From here on, dropping `staged` removes the temporary file.
    let staged = Staged {
        tmp,
        target: target.to_path_buf(),
    };
    let mut out = BufWriter::new(file);
    fill(&mut out)?;
    let file = out
        .into_inner()
        .map_err(|e| io_error(target, e.into_error()))?;
    file.sync_all().map_err(|e| io_error(target, e))?;
    Ok(staged)
}

/// [`stage_with`] for content already in memory.
pub(crate) fn stage(target: &Path, bytes: &[u8]) -> Result<Staged, ReportError> {
    stage_with(target, |out| {
        out.write_all(bytes).map_err(|e| io_error(target, e))
    })
}

/// Rename every staged file over its target, in order, then sync the
/// directories so the renames survive a crash. A target that is a
/// directory fails the whole set before anything is renamed.
pub(crate) fn commit_all(staged: Vec<Staged>) -> Result<(), ReportError> {
    for s in &staged {
        if fs::symlink_metadata(&s.target).is_ok_and(|m| m.is_dir()) {
            return Err(io_error(
                &s.target,
                io::Error::new(
                    io::ErrorKind::IsADirectory,
                    "is a directory, not a file; left as it is",
                ),
            ));
        }
    }
    let mut dirs: Vec<PathBuf> = Vec::new();
    for s in &staged {
        fs::rename(&s.tmp, &s.target).map_err(|e| io_error(&s.target, e))?;
        let dir = match s.target.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if !dirs.contains(&dir) {
            dirs.push(dir);
        }
    }
    for dir in dirs {
        sync_dir(&dir)?;
    }
    Ok(())
}

/// Make a directory's entries (the renames) durable. File systems that
/// cannot sync a directory say so with `EINVAL`; for them the renames are
/// as durable as they can be.
fn sync_dir(dir: &Path) -> Result<(), ReportError> {
    let synced = File::open(dir).and_then(|d| d.sync_all());
    match synced {
        Err(e) if e.kind() != io::ErrorKind::InvalidInput => Err(io_error(dir, e)),
        _ => Ok(()),
    }
}

/// Create a new, empty directory at `base`, or at `base-2`, `base-3`, …
/// when that name is taken (by a directory or anything else), creating
/// `base`'s parents as needed. Each candidate is claimed with one
/// `create_dir`, which fails if the name exists, so concurrent callers
/// (two runs started in the same second) always get different
/// directories. Returns the directory claimed.
pub fn claim_dir(base: &Path) -> Result<PathBuf, ReportError> {
    let name = base.file_name().ok_or_else(|| {
        io_error(
            base,
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "does not end in a directory name to claim",
            ),
        )
    })?;
    if let Some(parent) = base.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(|e| io_error(parent, e))?;
    }
    for n in 1..=MAX_CLAIMS {
        let candidate = if n == 1 {
            base.to_path_buf()
        } else {
            let mut suffixed = name.to_os_string();
            suffixed.push(format!("-{n}"));
            base.with_file_name(suffixed)
        };
        match fs::create_dir(&candidate) {
            Ok(()) => return Ok(candidate),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io_error(&candidate, e)),
        }
    }
    Err(io_error(
        base,
        io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("it and its suffixes -2 to -{MAX_CLAIMS} are all taken"),
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::sync::{Arc, Barrier};

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("sipstorm-atomic-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    /// Names in `dir` that are not `keep`: leftovers of a failed write.
    fn leftovers(dir: &Path, keep: &[&str]) -> Vec<String> {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !keep.contains(&n.as_str()))
            .collect()
    }

    fn write_atomic(target: &Path, bytes: &[u8]) -> Result<(), ReportError> {
        commit_all(vec![stage(target, bytes)?])
    }

    #[test]
    fn replaces_content_and_leaves_no_temporary_file() {
        let d = scratch("replace");
        let f = d.join("a.txt");
        write_atomic(&f, b"first").unwrap();
        write_atomic(&f, b"second, longer").unwrap();
        write_atomic(&f, b"3").unwrap();
        assert_eq!(fs::read(&f).unwrap(), b"3");
        assert_eq!(leftovers(&d, &["a.txt"]), Vec::<String>::new());
        fs::remove_dir_all(&d).ok();
    }

    #[test]
    fn failed_sets_change_nothing_and_name_the_file() {
        // (what goes wrong, which file the error must name)
        type Case = (
            &'static str,
            fn(&Path) -> Result<(), ReportError>,
            &'static str,
        );
        let cases: [Case; 3] = [
            (
                "the second target is a directory",
                |d| {
                    fs::create_dir(d.join("b.txt")).unwrap();
                    commit_all(vec![
                        stage(&d.join("a.txt"), b"new a")?,
                        stage(&d.join("b.txt"), b"new b")?,
                    ])
                },
                "b.txt",
            ),
            (
                "filling the second file fails midway",
                |d| {
                    let a = stage(&d.join("a.txt"), b"new a")?;
                    let b = stage_with(&d.join("b.txt"), |out| {
                        out.write_all(b"half of b").unwrap();
                        Err(io_error(
                            &d.join("b.txt"),
                            io::Error::new(io::ErrorKind::StorageFull, "no space left"),
                        ))
                    })?;
                    commit_all(vec![a, b])
                },
                "b.txt",
            ),
            (
                "the directory is gone",
                |d| {
                    fs::remove_dir_all(d.join("gone")).ok();
                    write_atomic(&d.join("gone").join("c.txt"), b"c")
                },
                "c.txt",
            ),
        ];
        for (what, fail, names) in cases {
            let d = scratch("failed-sets");
            fs::write(d.join("a.txt"), "old a").unwrap();
            let e = fail(&d).expect_err(what);
            assert!(e.to_string().contains(names), "{what}: {e}");
            assert_eq!(
                fs::read_to_string(d.join("a.txt")).unwrap(),
                "old a",
                "{what}"
            );
            let left = leftovers(&d, &["a.txt", "b.txt"]);
            assert!(left.is_empty(), "{what}: left {left:?}");
            fs::remove_dir_all(&d).ok();
        }
    }

    #[test]
    fn claims_the_base_then_numbered_suffixes() {
        let d = scratch("claim-seq");
        let base = d.join("nested").join("20260101-120000-call");
        assert_eq!(claim_dir(&base).unwrap(), base);
        let second = claim_dir(&base).unwrap();
        assert_eq!(second, d.join("nested").join("20260101-120000-call-2"));
        // A file in the way counts as taken, and a trailing slash is the
        // same base.
        fs::write(d.join("nested").join("20260101-120000-call-3"), "x").unwrap();
        let with_slash = PathBuf::from(format!("{}/", base.display()));
        assert_eq!(
            claim_dir(&with_slash).unwrap(),
            d.join("nested").join("20260101-120000-call-4")
        );
        for p in [&base, &second] {
            assert!(p.is_dir() && fs::read_dir(p).unwrap().next().is_none());
        }
        let e = claim_dir(Path::new("/")).unwrap_err();
        assert!(e.to_string().starts_with('/'), "{e}");
        fs::remove_dir_all(&d).ok();
    }

    #[test]
    fn racing_threads_never_share_a_directory() {
        const THREADS: usize = 8;
        let d = scratch("claim-race");
        let base = d.join("20260101-120000-register");
        let barrier = Arc::new(Barrier::new(THREADS));
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                let (base, barrier) = (base.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    claim_dir(&base).unwrap()
                })
            })
            .collect();
        let got: BTreeSet<PathBuf> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let expected: BTreeSet<PathBuf> = std::iter::once(base.clone())
            .chain((2..=THREADS).map(|n| d.join(format!("20260101-120000-register-{n}"))))
            .collect();
        assert_eq!(got, expected);
        fs::remove_dir_all(&d).ok();
    }
}
