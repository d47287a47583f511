//! Load-time errors: every problem names the file, the key and what is wrong.

use std::fmt;
use std::path::PathBuf;

/// One thing wrong with one policy file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The file, as given to the loader (e.g. `policies/cn-national-2018.toml`).
    pub file: String,
    /// The dotted key path in the file (e.g. `rules.major_hazard.cap`), or `(file)` when the
    /// problem is with the file as a whole.
    pub key: String,
    /// What is wrong, in words.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.file, self.key, self.message)
    }
}

/// Why a policy or a directory of policies was refused.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The directory or a file in it could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        /// What could not be read.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The directory holds no `*.toml` file.
    #[error("{}: no policy files (*.toml) found", dir.display())]
    Empty {
        /// The directory.
        dir: PathBuf,
    },
    /// One or more files are invalid; every problem found is listed.
    #[error("{}", list(.0))]
    Invalid(Vec<Problem>),
}

fn list(problems: &[Problem]) -> String {
    let mut out = format!(
        "{} problem{} in the reward policies:",
        problems.len(),
        if problems.len() == 1 { "" } else { "s" }
    );
    for p in problems {
        out.push_str("\n  ");
        out.push_str(&p.to_string());
    }
    out
}

impl PolicyError {
    /// The problems, for an invalid policy (empty for I/O errors).
    pub fn problems(&self) -> &[Problem] {
        match self {
            PolicyError::Invalid(p) => p,
            PolicyError::Io { .. } | PolicyError::Empty { .. } => &[],
        }
    }
}
