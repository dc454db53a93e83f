//! Unpacking an uploaded watch-list archive (tar, optionally gzip) into a folder, safely.
//!
//! The archive comes from the network, so nothing in it is trusted: an entry may only create
//! regular files and folders *inside* the destination. Absolute paths, `..`, symbolic and hard
//! links, devices and FIFOs are refused, as are files over [`Limits::max_file_bytes`], archives
//! with more than [`Limits::max_entries`] entries and archives that unpack to more than
//! [`Limits::max_total_bytes`] (a small gzip can inflate to a very large tar). A refusal names the
//! offending entry's position, never its content.

use flate2::read::GzDecoder;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};

/// What an archive may hold.
///
/// The defaults fit the service that unpacks uploads (dispatch) in its pod: the archive is
/// unpacked into `/tmp`, an in-memory volume, so everything unpacked counts against both the
/// volume's size and the container's memory, on top of the upload itself (held in memory while it
/// is unpacked) and the enrolment that follows. `docs/deployments.md` (*Limits*) gives the sum,
/// and a test checks it against `helm/lfr/values.yaml`.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Files and folders.
    pub max_entries: usize,
    /// One file: an image (or the manifest).
    pub max_file_bytes: u64,
    /// Everything unpacked: at most `/tmp`'s size, whatever a gzip inflates to.
    pub max_total_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_entries: 10_000,
            max_file_bytes: 32 * 1024 * 1024,
            // As large as the largest upload the API takes, and half of dispatch's `/tmp`, so a
            // second upload unpacking at the same time fits too.
            max_total_bytes: 256 * 1024 * 1024,
        }
    }
}

/// Why an archive was refused.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("not a readable tar archive: {0}")]
    Malformed(String),
    #[error("entry {index}: {why}")]
    Refused { index: usize, why: String },
    #[error("more than {0} entries")]
    TooManyEntries(usize),
    #[error("unpacks to more than {0} bytes")]
    TooLarge(u64),
    #[error("cannot unpack: {0}")]
    Io(#[from] io::Error),
}

/// gzip's magic number: a `.tar.gz` upload is recognised by its content, not by a header.
fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0x1f, 0x8b])
}

/// Unpack `bytes` (a tar, or a gzip of one) into the existing, empty folder `dest`.
pub fn unpack(bytes: &[u8], dest: &Path, limits: &Limits) -> Result<(), ArchiveError> {
    if is_gzip(bytes) {
        unpack_tar(GzDecoder::new(bytes), dest, limits)
    } else {
        unpack_tar(bytes, dest, limits)
    }
}

fn unpack_tar(reader: impl Read, dest: &Path, limits: &Limits) -> Result<(), ArchiveError> {
    let malformed = |e: io::Error| ArchiveError::Malformed(e.to_string());
    let mut archive = tar::Archive::new(reader);
    let mut total = 0u64;
    for (index, entry) in archive.entries().map_err(malformed)?.enumerate() {
        if index >= limits.max_entries {
            return Err(ArchiveError::TooManyEntries(limits.max_entries));
        }
        let refuse = |why: &str| ArchiveError::Refused {
            index,
            why: why.into(),
        };
        let mut entry = entry.map_err(malformed)?;
        let path = entry.path().map_err(malformed)?.into_owned();
        let Some(relative) = contained(&path) else {
            return Err(refuse(
                "path is absolute or leaves the archive (`..`): refused",
            ));
        };
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            if !relative.as_os_str().is_empty() {
                fs::create_dir_all(dest.join(&relative))?;
            }
            continue;
        }
        if !(kind.is_file() || kind.is_contiguous()) {
            // PAX and GNU long-name records are consumed by `entries()`; anything left that is not
            // a file or a folder (links, devices, FIFOs, sparse files) has no place in a list.
            return Err(refuse(&format!(
                "{kind:?} entries are not allowed, only files and folders"
            )));
        }
        if relative.as_os_str().is_empty() {
            return Err(refuse("a file entry without a name"));
        }
        let size = entry.header().size().map_err(malformed)?;
        if size > limits.max_file_bytes {
            return Err(refuse(&format!(
                "file of {size} bytes; at most {} allowed",
                limits.max_file_bytes
            )));
        }
        total += size;
        if total > limits.max_total_bytes {
            return Err(ArchiveError::TooLarge(limits.max_total_bytes));
        }
        let target = dest.join(&relative);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent)?;
        }
        // `create_new`: a second entry of the same name cannot overwrite the first, and nothing
        // already there (there is nothing: the folder was empty and links are refused) is followed.
        let mut file = match File::options().write(true).create_new(true).open(&target) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(refuse("a second entry with the same path"))
            }
            Err(e) => return Err(e.into()),
        };
        // Never trust the header's size alone: copy at most one byte more than the limit.
        let copied = io::copy(&mut (&mut entry).take(limits.max_file_bytes + 1), &mut file)
            .map_err(malformed)?;
        if copied > limits.max_file_bytes {
            return Err(refuse("file larger than its header says"));
        }
        file.flush()?;
    }
    Ok(())
}

/// `path` as a relative path of plain names (`.` dropped), or `None` if it is absolute or climbs
/// out with `..`.
fn contained(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(name) => out.push(name),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        build(&mut b);
        b.into_inner().unwrap()
    }

    fn file(b: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8]) {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, path, data).unwrap();
    }

    /// A header naming `path` verbatim: `tar::Builder` itself refuses to write `..` or absolute
    /// paths, so hostile archives are made by hand.
    fn raw(b: &mut tar::Builder<Vec<u8>>, path: &str, kind: tar::EntryType, data: &[u8]) {
        let mut h = tar::Header::new_old();
        h.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(kind);
        h.set_cksum();
        b.append(&h, data).unwrap();
    }

    fn unpacked(bytes: &[u8], limits: &Limits) -> (tempfile::TempDir, Result<(), ArchiveError>) {
        let dir = tempfile::tempdir().unwrap();
        let result = unpack(bytes, dir.path(), limits);
        (dir, result)
    }

    #[test]
    fn files_and_folders_unpack_plain_or_gzipped() {
        let bytes = tar_of(|b| {
            file(b, "manifest.toml", b"[[entry]]");
            file(b, "./images/a.jpg", b"jpeg");
        });
        let (dir, r) = unpacked(&bytes, &Limits::default());
        r.unwrap();
        assert_eq!(fs::read(dir.path().join("images/a.jpg")).unwrap(), b"jpeg");

        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&bytes).unwrap();
        let (dir, r) = unpacked(&gz.finish().unwrap(), &Limits::default());
        r.unwrap();
        assert!(dir.path().join("manifest.toml").exists());
    }

    #[test]
    fn escaping_paths_links_and_oversize_files_are_refused() {
        let outside = tempfile::tempdir().unwrap();
        let evil = outside.path().join("evil");
        let cases: Vec<(&str, Vec<u8>)> = vec![
            (
                "..",
                tar_of(|b| raw(b, "../evil", tar::EntryType::Regular, b"x")),
            ),
            (
                "absolute",
                tar_of(|b| raw(b, evil.to_str().unwrap(), tar::EntryType::Regular, b"x")),
            ),
            (
                "not allowed",
                tar_of(|b| {
                    let mut h = tar::Header::new_gnu();
                    h.set_entry_type(tar::EntryType::Symlink);
                    h.set_size(0);
                    b.append_link(&mut h, "link", "/etc/passwd").unwrap();
                }),
            ),
            (
                "not allowed",
                tar_of(|b| raw(b, "hard", tar::EntryType::Link, b"")),
            ),
            ("at most 8", tar_of(|b| file(b, "big.jpg", b"123456789"))),
            (
                "more than 3 entries",
                tar_of(|b| (0..4).for_each(|i| file(b, &format!("{i}.jpg"), b"x"))),
            ),
            (
                "same path",
                tar_of(|b| {
                    file(b, "a.jpg", b"x");
                    file(b, "a.jpg", b"y");
                }),
            ),
            ("more than 10 bytes", {
                tar_of(|b| (0..2).for_each(|i| file(b, &format!("{i}.jpg"), b"123456")))
            }),
            ("not a readable tar", b"\x1f\x8bnot gzip at all".to_vec()),
        ];
        let limits = Limits {
            max_entries: 3,
            max_file_bytes: 8,
            max_total_bytes: 10,
        };
        for (why, bytes) in cases {
            let (_dir, r) = unpacked(&bytes, &limits);
            let err = r.expect_err(why).to_string();
            assert!(err.contains(why), "expected {why:?}, got {err:?}");
        }
        assert!(!evil.exists());
        assert!(!outside.path().parent().unwrap().join("evil").exists());
    }
}
