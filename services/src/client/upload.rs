//! Files a client hands to `send`: uploaded through the connection in
//! base64 chunks, or referenced by a server-side path inside
//! `[client] allowed_paths`.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::protocol::{ErrorBody, ErrorCode};

/// One upload in progress on a connection (at most one per connection).
/// Lives in a private directory under the uploads directory; dropping it
/// (sent, replaced, logout, disconnect) removes the directory.
#[derive(Debug)]
pub struct Upload {
    dir: tempfile::TempDir,
    path: PathBuf,
    file: File,
    len: u64,
    /// Announced size, if the client gave one.
    size: Option<u64>,
}

/// Checks a client-given file name: one path component, printable.
fn file_name(name: &str) -> Result<&str, ErrorBody> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && name != "."
        && name != ".."
        && !name.contains(['/', '\0'])
        && !name.chars().any(char::is_control);
    if ok {
        Ok(name)
    } else {
        Err(ErrorBody::new(
            ErrorCode::BadRequest,
            format!("upload name {name:?} must be a plain file name (no '/', at most 255 bytes)"),
        ))
    }
}

impl Upload {
    /// Starts an upload of `name` (becomes the default dataset name) in a
    /// fresh directory under `uploads`.
    pub fn start(
        uploads: &Path,
        name: &str,
        size: Option<u64>,
        max: u64,
    ) -> Result<Upload, ErrorBody> {
        let name = file_name(name)?;
        if let Some(s) = size.filter(|s| *s > max) {
            return Err(too_large(s, max));
        }
        let internal = |e: std::io::Error| {
            tracing::error!(dir = %uploads.display(), error = %e, "cannot create upload file");
            ErrorBody::new(
                ErrorCode::Internal,
                format!(
                    "the server cannot store uploads in {}: {e}",
                    uploads.display()
                ),
            )
        };
        std::fs::create_dir_all(uploads).map_err(internal)?;
        let dir = tempfile::Builder::new()
            .prefix("upload.")
            .tempdir_in(uploads)
            .map_err(internal)?;
        let path = dir.path().join(name);
        let file = File::create_new(&path).map_err(internal)?;
        Ok(Upload {
            dir,
            path,
            file,
            len: 0,
            size,
        })
    }

    /// Appends a chunk that must start at `offset` (the bytes received so
    /// far: a client that lost track learns where to go on).
    pub fn append(&mut self, offset: u64, data: &[u8], max: u64) -> Result<u64, ErrorBody> {
        if offset != self.len {
            return Err(ErrorBody::new(
                ErrorCode::BadRequest,
                format!(
                    "chunk at offset {offset}, but {} bytes are uploaded so far; send offset {}",
                    self.len, self.len
                ),
            ));
        }
        let new_len = self.len + data.len() as u64;
        let limit = self.size.unwrap_or(max).min(max);
        if new_len > limit {
            return Err(if limit < max {
                ErrorBody::new(
                    ErrorCode::BadRequest,
                    format!("chunk goes beyond the announced size of {limit} bytes"),
                )
            } else {
                too_large(new_len, max)
            });
        }
        self.file.write_all(data).map_err(|e| {
            tracing::error!(path = %self.path.display(), error = %e, "cannot write upload");
            ErrorBody::new(
                ErrorCode::Internal,
                format!("the server cannot store the upload: {e}"),
            )
        })?;
        self.len = new_len;
        Ok(self.len)
    }

    /// The complete file, ready to be queued (flushed to disk first).
    pub fn finish(&mut self) -> Result<&Path, ErrorBody> {
        if let Some(size) = self.size.filter(|s| *s != self.len) {
            return Err(ErrorBody::new(
                ErrorCode::BadRequest,
                format!("upload incomplete: {} of {size} bytes received", self.len),
            ));
        }
        self.file
            .flush()
            .map_err(|e| ErrorBody::new(ErrorCode::Internal, e.to_string()))?;
        Ok(&self.path)
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The private directory (for tests and logs).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

fn too_large(size: u64, max: u64) -> ErrorBody {
    ErrorBody::new(
        ErrorCode::TooLarge,
        format!("{size} bytes exceed [client] max_upload_bytes = {max}"),
    )
}

/// Resolves a server-side path for `send`: it must name a regular file
/// inside one of `allowed` after symlinks and `..` are resolved. Missing
/// files and files outside get the same answer, so the protocol tells
/// nothing about the rest of the file system.
pub fn allowed_source(allowed: &[PathBuf], requested: &Path) -> Result<PathBuf, ErrorBody> {
    let refuse = |why: &str| {
        ErrorBody::new(
            ErrorCode::PathNotAllowed,
            format!(
                "{}: {why}; upload the file instead, or ask the admin to add its directory to [client] allowed_paths",
                requested.display()
            ),
        )
    };
    if allowed.is_empty() {
        return Err(refuse("this server allows no server-side paths"));
    }
    if !requested.is_absolute() {
        return Err(refuse("not an absolute path"));
    }
    let not_inside = || refuse("not an existing file inside an allowed directory");
    let real = std::fs::canonicalize(requested).map_err(|_| not_inside())?;
    if !inside_allowed(allowed, &real) || !std::fs::metadata(&real).is_ok_and(|m| m.is_file()) {
        return Err(not_inside());
    }
    Ok(real)
}

/// [`allowed_source`], opened: the file is checked again by what was
/// really opened (`/proc/self/fd`), so a directory or link swapped between
/// the check and the open cannot smuggle in a file from elsewhere.
pub fn open_allowed_source(
    allowed: &[PathBuf],
    requested: &Path,
) -> Result<(PathBuf, std::fs::File), ErrorBody> {
    use std::os::fd::AsRawFd;
    let real = allowed_source(allowed, requested)?;
    let refuse = || {
        ErrorBody::new(
            ErrorCode::PathNotAllowed,
            format!(
                "{}: changed while it was being opened; try again",
                requested.display()
            ),
        )
    };
    let file = std::fs::File::open(&real).map_err(|_| refuse())?;
    let opened =
        std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())).map_err(|_| refuse())?;
    if !inside_allowed(allowed, &opened) || !file.metadata().is_ok_and(|m| m.is_file()) {
        return Err(refuse());
    }
    Ok((real, file))
}

/// Whether the canonical `path` lies below (not at) an allowed directory.
fn inside_allowed(allowed: &[PathBuf], path: &Path) -> bool {
    allowed.iter().any(|root| {
        std::fs::canonicalize(root).is_ok_and(|root| path.starts_with(&root) && path != root)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_paths_resolve_links_and_dots() {
        let t = tempfile::tempdir().unwrap();
        let allowed = t.path().join("out");
        let secret = t.path().join("secret");
        std::fs::create_dir_all(allowed.join("sub")).unwrap();
        std::fs::create_dir(&secret).unwrap();
        std::fs::write(allowed.join("sub/ok.edi"), b"x").unwrap();
        std::fs::write(secret.join("key"), b"k").unwrap();
        std::os::unix::fs::symlink(secret.join("key"), allowed.join("link")).unwrap();
        std::os::unix::fs::symlink(&secret, allowed.join("dirlink")).unwrap();
        let roots = [allowed.clone()];
        assert_eq!(
            allowed_source(&roots, &allowed.join("sub/../sub/ok.edi")).unwrap(),
            std::fs::canonicalize(allowed.join("sub/ok.edi")).unwrap()
        );
        for bad in [
            allowed.join("../secret/key"),
            allowed.join("link"),
            allowed.join("dirlink/key"),
            allowed.join("sub"),
            allowed.clone(),
            allowed.join("missing"),
            PathBuf::from("out/sub/ok.edi"),
        ] {
            let e = allowed_source(&roots, &bad).unwrap_err();
            assert_eq!(e.code, ErrorCode::PathNotAllowed, "{}", bad.display());
        }
        assert_eq!(
            allowed_source(&[], &allowed.join("sub/ok.edi"))
                .unwrap_err()
                .code,
            ErrorCode::PathNotAllowed
        );
    }

    #[test]
    fn the_opened_file_is_the_checked_one() {
        use std::io::Read;
        let t = tempfile::tempdir().unwrap();
        let allowed = t.path().join("out");
        std::fs::create_dir(&allowed).unwrap();
        std::fs::write(allowed.join("ok.edi"), b"payload").unwrap();
        std::fs::write(t.path().join("secret"), b"k").unwrap();
        std::os::unix::fs::symlink(t.path().join("secret"), allowed.join("link")).unwrap();
        let roots = [allowed.clone()];
        let (real, mut f) = open_allowed_source(&roots, &allowed.join("ok.edi")).unwrap();
        assert_eq!(real, allowed.canonicalize().unwrap().join("ok.edi"));
        let mut got = String::new();
        f.read_to_string(&mut got).unwrap();
        assert_eq!(got, "payload");
        assert!(open_allowed_source(&roots, &allowed.join("link")).is_err());
        // What the fd check sees for a file opened outside the roots.
        let outside = std::fs::File::open(t.path().join("secret")).unwrap();
        let seen = std::fs::read_link(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&outside)
        ))
        .unwrap();
        assert!(!inside_allowed(&roots, &seen));
    }

    #[test]
    fn uploads_are_bounded_and_ordered() {
        let t = tempfile::tempdir().unwrap();
        let mut u = Upload::start(t.path(), "A.EDI", None, 10).unwrap();
        assert_eq!(u.append(0, b"12345", 10).unwrap(), 5);
        assert_eq!(
            u.append(0, b"x", 10).unwrap_err().code,
            ErrorCode::BadRequest
        );
        assert_eq!(
            u.append(5, b"123456", 10).unwrap_err().code,
            ErrorCode::TooLarge
        );
        assert_eq!(std::fs::read(u.finish().unwrap()).unwrap(), b"12345");
        let dir = u.dir().to_owned();
        drop(u);
        assert!(!dir.exists(), "upload directory must be removed on drop");
        for name in ["", "..", "a/b", "x\ny"] {
            assert!(Upload::start(t.path(), name, None, 10).is_err(), "{name:?}");
        }
        assert_eq!(
            Upload::start(t.path(), "B", Some(11), 10).unwrap_err().code,
            ErrorCode::TooLarge
        );
        let mut u = Upload::start(t.path(), "C", Some(4), 10).unwrap();
        u.append(0, b"12", 10).unwrap();
        assert_eq!(u.finish().unwrap_err().code, ErrorCode::BadRequest);
        assert_eq!(
            u.append(2, b"345", 10).unwrap_err().code,
            ErrorCode::BadRequest
        );
    }
}
