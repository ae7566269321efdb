//! Passwords: argon2id with m=19456 KiB, t=2, p=1 (the OWASP minimum), stored as PHC strings so
//! stronger parameters can be adopted later: an older hash still verifies and is replaced at the
//! next successful login. Hashing runs on half the cores at most, so a flood of logins cannot
//! take every worker's CPU at once.

use std::cell::RefCell;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, mpsc};

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};

use crate::crypto::{ct_eq, random_bytes};
use crate::error::Error;

/// Memory cost in KiB.
pub const M_COST: u32 = 19_456;
/// Iterations.
pub const T_COST: u32 = 2;
/// Parallelism.
pub const P_COST: u32 = 1;

/// Shortest and longest accepted passwords (ASVS 5.0 6.2.1, 6.2.9); verified exactly as typed.
pub const MIN_LEN: usize = 8;
pub const MAX_LEN: usize = 1024;

fn params() -> Result<Params, Error> {
    Params::new(M_COST, T_COST, P_COST, Some(32)).map_err(|_| Error::Crypto("argon2 parameters"))
}

thread_local! {
    /// This hashing thread's argon2 working memory (m_cost KiB), kept from one hash to the
    /// next while hashes are queued, and released when the queue is empty: allocating and
    /// freeing 19 MiB per login left freed buffers in up to 16 malloc arenas (325 MB resident
    /// under the benchmark's login flood).
    static BLOCKS: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// Capacity reserved for the working memory, in 1 KiB blocks: 33 MiB, above the largest
/// threshold (32 MiB) at which glibc stops serving allocations with their own mmap. Only the
/// 19 MiB argon2 writes are ever touched (resident); the point is that freeing the buffer
/// unmaps it, where a 19 MiB block from a malloc arena would stay resident after an idle
/// server's last sign-in.
const MMAPPED_BLOCKS: usize = 33 * 1024;

/// Computes argon2 into `out` with this thread's kept working memory. A stored hash with a
/// larger memory cost than today's (made by a future, stronger setting) gets a buffer of its
/// own that is freed right after.
fn compute(
    argon: &Argon2<'_>,
    params: &Params,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> bool {
    let needed = params.block_count();
    let kept = usize::try_from(M_COST).unwrap_or(usize::MAX);
    if needed > kept {
        let mut own = vec![Block::default(); needed];
        return argon
            .hash_password_into_with_memory(password, salt, out, &mut own[..])
            .is_ok();
    }
    BLOCKS.with_borrow_mut(|blocks| {
        if blocks.len() < needed {
            if blocks.capacity() < needed {
                *blocks = Vec::with_capacity(needed.max(MMAPPED_BLOCKS));
            }
            blocks.resize(needed, Block::default());
        }
        let memory = blocks.get_mut(..needed).unwrap_or_default();
        argon
            .hash_password_into_with_memory(password, salt, out, memory)
            .is_ok()
    })
}

type Job = Box<dyn FnOnce() + Send>;

/// How many hashes run at once: half the cores, at least one. A login flood (a password
/// guesser) then takes at most half the machine, and the other half keeps answering tokens,
/// introspection and forward auth; each running hash holds m_cost KiB (19 MiB), so on a small
/// machine this also keeps the server's memory bounded (the benchmark's login flood: one hash
/// at a time on 2 cores, peak RSS under 40 MB).
pub fn hashing_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get() / 2)
        .unwrap_or(1)
        .max(1)
}

/// The hashing threads ([`hashing_threads`] of them), fed through a queue. Every argon2
/// computation runs on one of them, which bounds both the CPU a login flood can take and the
/// memory: each thread keeps one m_cost buffer (measured with the benchmark: 3.6 GB resident
/// under a login flood when hashing ran on the 32 connection threads, 325 MB with a hashing
/// thread per core allocating per hash, 50 MB with kept buffers).
fn pool() -> Option<&'static Mutex<mpsc::Sender<Job>>> {
    static POOL: OnceLock<Option<Mutex<mpsc::Sender<Job>>>> = OnceLock::new();
    POOL.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let n = hashing_threads();
        let mut started = 0;
        for i in 0..n {
            let rx = Arc::clone(&rx);
            let spawned = std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || {
                    loop {
                        let next = rx.lock().unwrap_or_else(PoisonError::into_inner).try_recv();
                        let job = match next {
                            Ok(job) => job,
                            Err(mpsc::TryRecvError::Disconnected) => return,
                            Err(mpsc::TryRecvError::Empty) => {
                                // Nothing waiting: give the working memory back until the
                                // next hash (glibc serves and returns a buffer this size with
                                // mmap/munmap), so an idle server does not hold 19 MiB.
                                BLOCKS.with_borrow_mut(|b| *b = Vec::new());
                                match rx.lock().unwrap_or_else(PoisonError::into_inner).recv() {
                                    Ok(job) => job,
                                    Err(_) => return,
                                }
                            }
                        };
                        job();
                    }
                });
            if spawned.is_ok() {
                started += 1;
            }
        }
        (started > 0).then(|| Mutex::new(tx))
    })
    .as_ref()
}

/// Runs `f` on a hashing thread and waits for its result. If no hashing thread could be
/// started, it runs here.
fn on_pool<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let Some(pool) = pool() else { return f() };
    let (tx, rx) = mpsc::sync_channel(1);
    let (done, reply) = (tx.clone(), rx);
    let job: Job = Box::new(move || {
        let _ = done.send(f());
    });
    drop(tx);
    if let Err(mpsc::SendError(job)) = pool
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .send(job)
    {
        // Unreachable while the threads run; do the work here rather than fail.
        job();
    }
    match reply.recv() {
        Ok(v) => v,
        // The hashing thread panicked: propagate as a panic of this request (the server's
        // backstop turns it into a 500).
        #[allow(clippy::panic)]
        Err(_) => panic!("argon2 hashing thread failed"),
    }
}

/// Checks a new password's length. No composition rules (ASVS 5.0 6.2.5).
pub fn validate_new(password: &str) -> Result<(), String> {
    let n = password.chars().count();
    if n < MIN_LEN {
        return Err(format!("a password needs at least {MIN_LEN} characters"));
    }
    if password.len() > MAX_LEN {
        return Err(format!("a password has at most {MAX_LEN} bytes"));
    }
    Ok(())
}

/// Hashes a password to a PHC string with a random salt.
pub fn hash(password: &str) -> Result<String, Error> {
    let password = password.to_string();
    let params = params()?;
    let salt = Salt::new(&random_bytes::<16>()?).map_err(|_| Error::Crypto("argon2 salt"))?;
    on_pool(move || {
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
        let mut out = [0u8; 32];
        if !compute(
            &argon,
            &params,
            password.as_bytes(),
            salt.as_ref(),
            &mut out,
        ) {
            return Err(());
        }
        let phc = PasswordHash {
            algorithm: Algorithm::Argon2id.ident(),
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(&params).map_err(|_| ())?,
            salt: Some(salt),
            hash: Some(Output::new(&out).map_err(|_| ())?),
        };
        Ok(phc.to_string())
    })
    .map_err(|()| Error::Crypto("argon2 hashing failed"))
}

/// True if `password` matches the PHC string (with the algorithm and parameters stored in it).
pub fn verify(password: &str, phc: &str) -> bool {
    if password.len() > MAX_LEN {
        return false;
    }
    let (password, phc) = (password.to_string(), phc.to_string());
    on_pool(move || {
        let Ok(parsed) = PasswordHash::new(&phc) else {
            return false;
        };
        let Ok(algorithm) = Algorithm::try_from(parsed.algorithm.as_str()) else {
            return false;
        };
        let Ok(version) = parsed
            .version
            .map(Version::try_from)
            .transpose()
            .map(Option::unwrap_or_default)
        else {
            return false;
        };
        let Ok(params) = Params::try_from(&parsed) else {
            return false;
        };
        let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
            return false;
        };
        let argon = Argon2::new(algorithm, version, params.clone());
        let mut out = vec![0u8; expected.len()];
        compute(
            &argon,
            &params,
            password.as_bytes(),
            salt.as_ref(),
            &mut out,
        ) && ct_eq(&out, expected.as_bytes())
    })
}

/// Spends the same work as a real verification, for unknown users, so the answer's timing
/// does not tell whether an account exists (ASVS 5.0 6.3.8).
pub fn verify_dummy(password: &str) {
    static DUMMY: OnceLock<Option<String>> = OnceLock::new();
    if let Some(phc) = DUMMY.get_or_init(|| hash("latchkey dummy password").ok()) {
        let _ = verify(password, phc);
    }
}

/// True if the stored hash is not argon2id with at least the current parameters.
pub fn needs_rehash(phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return true;
    };
    if parsed.algorithm.as_str() != "argon2id" {
        return true;
    }
    match Params::try_from(&parsed) {
        Ok(p) => p.m_cost() < M_COST || p.t_cost() < T_COST || p.p_cost() < P_COST,
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::{PasswordHasher, PasswordVerifier};

    #[test]
    fn our_hashes_are_standard_phc_strings() {
        // The argon2 crate's own verifier (not our code) accepts what we produce, and two
        // hashes of one password differ by their salt.
        let phc = hash("correct horse").unwrap();
        let parsed = PasswordHash::new(&phc).unwrap();
        let argon = Argon2::default();
        assert!(argon.verify_password(b"correct horse", &parsed).is_ok());
        assert!(argon.verify_password(b"correct horsf", &parsed).is_err());
        assert_ne!(phc, hash("correct horse").unwrap());
        // The kept working memory gives the same result across many hashes on one thread.
        for _ in 0..3 {
            assert!(verify("correct horse", &phc));
        }
    }

    #[test]
    fn stronger_stored_parameters_still_verify() {
        let strong = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(M_COST * 2, T_COST, P_COST, None).unwrap(),
        )
        .hash_password(b"future password")
        .unwrap()
        .to_string();
        assert!(verify("future password", &strong));
        assert!(!verify("future passwore", &strong));
        assert!(!needs_rehash(&strong));
    }

    #[test]
    fn hash_and_verify() {
        let phc = hash("correct horse").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify("correct horse", &phc));
        assert!(!verify("correct horsf", &phc));
        assert!(!verify("correct horse", "not a phc string"));
        assert!(!needs_rehash(&phc));
    }

    #[test]
    fn weaker_hashes_verify_and_need_rehash() {
        let weak = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(8192, 1, 1, None).unwrap(),
        )
        .hash_password(b"old password")
        .unwrap()
        .to_string();
        assert!(verify("old password", &weak));
        assert!(needs_rehash(&weak));
        let argon2i = Argon2::new(Algorithm::Argon2i, Version::V0x13, Params::default())
            .hash_password(b"x")
            .unwrap()
            .to_string();
        assert!(needs_rehash(&argon2i));
    }

    #[test]
    fn length_rules() {
        assert!(validate_new("short").is_err());
        assert!(validate_new("12345678").is_ok());
        assert!(validate_new(&"x".repeat(MAX_LEN + 1)).is_err());
    }
}
