//! Fixtures shared by the fuzz targets (`fuzz_targets/*.rs`) and by the seed generator
//! (`examples/seeds.rs`), so a committed seed is built against exactly the keys, contexts and
//! trees the targets use.
//!
//! Everything here is deterministic (fixed seeds, a fixed test-only `age` identity) so that a
//! crash input reproduces in a new process.

#![forbid(unsafe_code)]

pub mod http;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use vault_crypto::envelope::EnvelopeContext;
use vault_crypto::keyring::Keyring;
use vault_crypto::random::DeterministicRandom;

/// The contexts an envelope input can be opened under (selected by its first byte).
pub const CONTEXTS: [EnvelopeContext<'static>; 4] = [
    EnvelopeContext {
        record_id: "rec_01",
        jurisdiction: "140105",
    },
    EnvelopeContext {
        record_id: "rec_02",
        jurisdiction: "140105",
    },
    EnvelopeContext {
        record_id: "rec_01",
        jurisdiction: "370100",
    },
    EnvelopeContext {
        record_id: "",
        jurisdiction: "",
    },
];

/// KEK versions a rewrap can target (selected by the second byte): retired, held, active,
/// never created, and the largest.
pub const REWRAP_TO: [u32; 5] = [1, 2, 3, 4, u32::MAX];

/// The fixed keyring of the envelope target: KEK versions 2 and 3 (active), version 1
/// created and then retired.
pub fn envelope_keyring() -> &'static Keyring {
    static KR: OnceLock<Keyring> = OnceLock::new();
    KR.get_or_init(|| {
        let rng = DeterministicRandom::new(0x00f0_2201);
        let mut kr = Keyring::generate(&rng, 1_700_000_000).unwrap_or_else(|e| panic!("{e}"));
        kr.rotate(&rng, 1_700_000_100)
            .unwrap_or_else(|e| panic!("{e}"));
        kr.rotate(&rng, 1_700_000_200)
            .unwrap_or_else(|e| panic!("{e}"));
        kr.retire(1).unwrap_or_else(|e| panic!("{e}"));
        kr
    })
}

/// A test-only `age` X25519 identity (never used for anything but fuzzing), fixed so that
/// committed keyring seeds decrypt in every process.
pub const TEST_AGE_IDENTITY: &str =
    "AGE-SECRET-KEY-1RVJXCWVRCD0FWNVPYAS5H6GQZR6EEEZVR4HS526QQ9KH8LQL0KVQXR8T3T";
/// Its recipient.
pub const TEST_AGE_RECIPIENT: &str =
    "age1zcd9antadqkqlgh9ckppsnerr8jzh2nuh8xv3ruszynhw4s7gess8j2ey7";

/// A private scratch directory for this process: under `$RV_FUZZ_SCRATCH` when set
/// (`tests/fuzz/run` points it into its own temporary directory, removed when it ends), else
/// under /dev/shm when it exists (file round trips then cost no disk I/O), else the temporary
/// directory.
pub fn scratch_dir(tag: &str) -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let base = DIR.get_or_init(|| {
        let root = match std::env::var_os("RV_FUZZ_SCRATCH") {
            Some(dir) => PathBuf::from(dir),
            None if Path::new("/dev/shm").is_dir() => PathBuf::from("/dev/shm"),
            None => std::env::temp_dir(),
        };
        let dir = root.join(format!("rv-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("scratch dir: {e}"));
        set_mode(&dir, 0o700);
        dir
    });
    let dir = base.join(tag);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("scratch dir: {e}"));
    set_mode(&dir, 0o700);
    dir
}

/// `chmod`.
pub fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

/// Writes `bytes` to `path` with mode 0600 (replacing it).
pub fn write_private(path: &Path, bytes: &[u8]) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::remove_file(path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    f.write_all(bytes)
        .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// The identity file holding [`TEST_AGE_IDENTITY`], mode 0600.
pub fn test_identity_file() -> &'static Path {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        let p = scratch_dir("keyring").join("identity.txt");
        write_private(
            &p,
            format!("# fuzz-only identity\n{TEST_AGE_IDENTITY}\n").as_bytes(),
        );
        p
    })
}

/// Encrypts `plaintext` to [`TEST_AGE_RECIPIENT`] (binary `age` format).
pub fn age_encrypt_to_test_identity(plaintext: &[u8]) -> Vec<u8> {
    vault_crypto::agefmt::encrypt_to_recipient(TEST_AGE_RECIPIENT, plaintext)
        .unwrap_or_else(|e| panic!("age encrypt: {e}"))
}

/// The Ed25519 seed of the checkpoint target's log key.
pub const LOG_SEED: [u8; 32] = [0x4c; 32];
/// Its key name (and checkpoint origin).
pub const LOG_NAME: &str = "fuzz.example/log";

/// Leaves of the Merkle target's trees: leaf `i` is `leaf_hash(i as u64 BE)`.
pub const MAX_TREE: usize = 40;

/// Leaf hashes `0..MAX_TREE`.
pub fn merkle_leaves() -> &'static [vault_crypto::merkle::Hash] {
    static L: OnceLock<Vec<vault_crypto::merkle::Hash>> = OnceLock::new();
    L.get_or_init(|| {
        (0..MAX_TREE as u64)
            .map(|i| vault_crypto::merkle::leaf_hash(&i.to_be_bytes()))
            .collect()
    })
}
