//! Loading the module, finding the token, logging in, and the session pool.
//!
//! # One module context per process
//!
//! PKCS#11 allows one `C_Initialize` per process and module, and the login state is per
//! application and token, shared by all of its sessions. So the loaded modules live in a
//! process-wide registry keyed by path: a second [`Token::connect`] to the same module reuses
//! the context (and accepts `CKR_CRYPTOKI_ALREADY_INITIALIZED` from a module initialised by
//! someone else). The library is never finalised: finalising would close every session of
//! every provider in the process.
//!
//! When the token is already logged in by this process, `C_Login` answers
//! `CKR_USER_ALREADY_LOGGED_IN` without checking the PIN. To keep a second `connect` with a
//! wrong PIN from riding on the first one's login, the registry remembers an HMAC of the PIN
//! that logged in (keyed with a random per-process key, never the PIN itself) and refuses a
//! different PIN as `PIN incorrect`.
//!
//! # Sessions
//!
//! A `cryptoki::session::Session` is `Send` but not `Sync`. Each [`Token`] keeps one
//! *anchor* session, opened before login and held for the token's life (closing the last
//! session of an application logs it out), which [`Token::probe`] uses; and a small pool of
//! idle sessions behind a mutex for cryptographic calls. A call takes a session from the pool
//! (or opens one), uses it without holding any lock, and gives it back unless the error says
//! the session is dead.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, OnceLock};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::object::ObjectHandle;
use cryptoki::session::{Session, SessionState, UserType};
use cryptoki::slot::Slot;
use secrecy::{ExposeSecret, SecretString};

use crate::error::{HsmError, describe, op};
use crate::objects;

/// Idle sessions kept per token; more are opened under load and closed when returned.
const MAX_IDLE_SESSIONS: usize = 4;

struct Module {
    ctx: Pkcs11,
    /// Per slot id: HMAC-SHA256(process key, PIN) of the PIN this process logged in with.
    logins: HashMap<u64, [u8; 32]>,
}

#[derive(Default)]
struct Registry {
    modules: HashMap<PathBuf, Module>,
    /// Random per-process key for the PIN tags; made on first use.
    pin_key: Option<ring::hmac::Key>,
}

static REGISTRY: OnceLock<Mutex<Registry>> = OnceLock::new();

fn registry() -> MutexGuard<'static, Registry> {
    let lock = REGISTRY.get_or_init(|| Mutex::new(Registry::default()));
    // The registry's maps stay consistent even if a holder panicked (each update is one
    // insert), so a poisoned lock is still usable.
    lock.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Registry {
    fn module(&mut self, path: &Path) -> Result<&mut Module, HsmError> {
        let key = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        let module_err = |reason: String| HsmError::Module {
            path: path.display().to_string(),
            reason,
        };
        if !self.modules.contains_key(&key) {
            let ctx = Pkcs11::new(path).map_err(|e| match e {
                CkError::LibraryLoading(l) => module_err(l.to_string()),
                other => module_err(describe(&other)),
            })?;
            match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
                Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
                Err(e) => return Err(module_err(format!("C_Initialize failed: {}", describe(&e)))),
            }
            self.modules.insert(
                key.clone(),
                Module {
                    ctx,
                    logins: HashMap::new(),
                },
            );
        }
        self.modules
            .get_mut(&key)
            .ok_or_else(|| module_err("module registry lost the module".into()))
    }

    fn pin_tag(&mut self, pin: &SecretString, label: &str) -> Result<[u8; 32], HsmError> {
        let rng_failed = || login_error(label, "the system random source failed");
        let key = match &self.pin_key {
            Some(k) => k,
            None => {
                let k = ring::hmac::Key::generate(
                    ring::hmac::HMAC_SHA256,
                    &ring::rand::SystemRandom::new(),
                )
                .map_err(|_| rng_failed())?;
                self.pin_key.insert(k)
            }
        };
        let tag = ring::hmac::sign(key, pin.expose_secret().as_bytes());
        <[u8; 32]>::try_from(tag.as_ref()).map_err(|_| rng_failed())
    }
}

fn login_error(label: &str, reason: impl Into<String>) -> HsmError {
    HsmError::Login {
        label: label.to_owned(),
        reason: reason.into(),
    }
}

/// One logged-in token: the module context, its slot, the anchor session and the pool.
pub(crate) struct Token {
    label: String,
    ctx: Pkcs11,
    slot: Slot,
    anchor: Mutex<Session>,
    idle: Mutex<Vec<Session>>,
    /// The root key found at start-up; [`Token::probe`] insists it is still the one there.
    root: OnceLock<ObjectHandle>,
}

impl Token {
    /// Loads the module (once per process), finds the token by label and logs in as the
    /// normal user.
    pub(crate) fn connect(
        module: &Path,
        label: &str,
        pin: &SecretString,
    ) -> Result<Token, HsmError> {
        let mut reg = registry();
        let ctx = reg.module(module)?.ctx.clone();
        let slot = find_slot(&ctx, label)?;
        let anchor = ctx
            .open_rw_session(slot)
            .map_err(op(label, "C_OpenSession"))?;
        let tag = reg.pin_tag(pin, label)?;
        let logged_in = reg.module(module)?.logins.get(&slot.id()).copied();
        match anchor.login(UserType::User, Some(pin)) {
            Ok(()) => {}
            Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => match logged_in {
                Some(t) if t == tag => {}
                Some(_) => return Err(login_error(label, "PIN incorrect")),
                None => {
                    return Err(login_error(
                        label,
                        "the token is already logged in by code outside reporter-vault in this \
                         process, so the PIN cannot be verified",
                    ));
                }
            },
            Err(CkError::Pkcs11(rv, _)) => {
                let reason = match rv {
                    RvError::PinIncorrect | RvError::PinLenRange | RvError::PinInvalid => {
                        "PIN incorrect".to_owned()
                    }
                    RvError::PinLocked => "PIN locked".to_owned(),
                    RvError::PinExpired => "PIN expired".to_owned(),
                    RvError::UserPinNotInitialized => "user PIN not initialised".to_owned(),
                    RvError::UserAnotherAlreadyLoggedIn => {
                        "the security officer is logged in to this token".to_owned()
                    }
                    other => format!("{other:?}"),
                };
                return Err(login_error(label, reason));
            }
            Err(other) => return Err(login_error(label, describe(&other))),
        }
        reg.module(module)?.logins.insert(slot.id(), tag);
        drop(reg);
        Ok(Token {
            label: label.to_owned(),
            ctx,
            slot,
            anchor: Mutex::new(anchor),
            idle: Mutex::new(Vec::new()),
            root: OnceLock::new(),
        })
    }

    /// Pins the root key found at start-up, so a token wiped and re-provisioned under the
    /// running process fails [`Token::probe`] instead of serving different keys.
    pub(crate) fn pin_root(&self, root: ObjectHandle) {
        let _ = self.root.set(root);
    }

    /// The token label.
    pub(crate) fn label(&self) -> &str {
        &self.label
    }

    /// Runs `f` on a pooled session. The session goes back to the pool unless `f` failed
    /// in a way that says the session (or the token) is gone.
    pub(crate) fn with_session<T>(
        &self,
        f: impl FnOnce(&Session) -> Result<T, CkError>,
    ) -> Result<T, CkError> {
        let pooled = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let session = match pooled {
            Some(s) => s,
            None => self.ctx.open_rw_session(self.slot)?,
        };
        let result = f(&session);
        let keep = match &result {
            Ok(_) => true,
            Err(e) => !session_is_dead(e),
        };
        if keep
            && let Ok(mut idle) = self.idle.lock()
            && idle.len() < MAX_IDLE_SESSIONS
        {
            idle.push(session);
        }
        result
    }

    /// Whether the token is present and logged in, and its root key still there: session
    /// info on the anchor session, then a find for the root key. Cheap (no cryptography).
    pub(crate) fn probe(&self) -> Result<(), String> {
        let anchor = self
            .anchor
            .lock()
            .map_err(|_| format!("PKCS#11 token '{}': session lock poisoned", self.label))?;
        let info = anchor.get_session_info().map_err(|e| {
            format!(
                "PKCS#11 token '{}' is not available: {}",
                self.label,
                describe(&e)
            )
        })?;
        match info.session_state() {
            SessionState::RoUser | SessionState::RwUser => {}
            _ => return Err(format!("PKCS#11 token '{}' is not logged in", self.label)),
        }
        let roots = anchor.find_objects(&objects::root_search()).map_err(|e| {
            format!(
                "PKCS#11 token '{}' is not available: {}",
                self.label,
                describe(&e)
            )
        })?;
        match (roots.as_slice(), self.root.get()) {
            ([found], Some(pinned)) if found != pinned => Err(format!(
                "PKCS#11 token '{}': the root key {} was replaced since start-up",
                self.label,
                objects::ROOT_LABEL
            )),
            ([_], _) => Ok(()),
            _ => Err(format!(
                "PKCS#11 token '{}' no longer holds the root key {}",
                self.label,
                objects::ROOT_LABEL
            )),
        }
    }
}

/// Errors after which a session is not worth keeping.
fn session_is_dead(e: &CkError) -> bool {
    matches!(
        e,
        CkError::Pkcs11(
            RvError::SessionHandleInvalid
                | RvError::SessionClosed
                | RvError::DeviceRemoved
                | RvError::DeviceError
                | RvError::DeviceMemory
                | RvError::TokenNotPresent
                | RvError::TokenNotRecognized
                | RvError::UserNotLoggedIn
                | RvError::CryptokiNotInitialized,
            _
        )
    )
}

fn find_slot(ctx: &Pkcs11, label: &str) -> Result<Slot, HsmError> {
    let slots = ctx
        .get_slots_with_token()
        .map_err(op(label, "C_GetSlotList"))?;
    let mut found = Vec::new();
    for slot in slots {
        // A slot whose token vanished between the two calls is simply not a match.
        if let Ok(info) = ctx.get_token_info(slot)
            && info.label().trim_end() == label
        {
            found.push((slot, info));
        }
    }
    let mut found = found.into_iter();
    match (found.next(), found.next()) {
        (None, _) => Err(HsmError::TokenNotFound(label.to_owned())),
        (Some(_), Some(_)) => Err(HsmError::TokenAmbiguous(label.to_owned())),
        (Some((slot, info)), None) => {
            if !info.token_initialized() {
                return Err(HsmError::TokenNotFound(label.to_owned()));
            }
            if info.user_pin_locked() {
                return Err(login_error(label, "PIN locked"));
            }
            if !info.user_pin_initialized() {
                return Err(login_error(label, "user PIN not initialised"));
            }
            Ok(slot)
        }
    }
}
