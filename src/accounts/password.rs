//! Passwords: argon2id with m=19456 KiB, t=2, p=1 (the OWASP minimum), stored as PHC strings so
//! stronger parameters can be adopted later: an older hash still verifies and is replaced at the
//! next successful login. Hashing is bounded to one job per core, so a flood of logins cannot
//! take every worker's CPU at once.

use std::sync::{Arc, Mutex, OnceLock, PoisonError, mpsc};

use argon2::password_hash::{PasswordHasher, PasswordVerifier, phc::PasswordHash};
use argon2::{Algorithm, Argon2, Params, Version};

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

fn hasher() -> Result<Argon2<'static>, Error> {
    let params = Params::new(M_COST, T_COST, P_COST, Some(32))
        .map_err(|_| Error::Crypto("argon2 parameters"))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

type Job = Box<dyn FnOnce() + Send>;

/// The hashing threads: one per core, fed through a queue. Every argon2 computation runs on
/// one of them, which bounds both the CPU a login flood can take (one hash per core at a time)
/// and the memory: each computation needs m_cost KiB, and with a fixed set of threads the
/// allocator reuses those buffers instead of growing one arena per connection thread (measured
/// with the benchmark: 3.6 GB resident under a login flood when hashing ran on the 32
/// connection threads).
fn pool() -> Option<&'static Mutex<mpsc::Sender<Job>>> {
    static POOL: OnceLock<Option<Mutex<mpsc::Sender<Job>>>> = OnceLock::new();
    POOL.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let n = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let mut started = 0;
        for i in 0..n {
            let rx = Arc::clone(&rx);
            let spawned = std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || {
                    loop {
                        let job = rx.lock().unwrap_or_else(PoisonError::into_inner).recv();
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
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
    on_pool(move || {
        let argon = hasher().map_err(|_| ())?;
        argon
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
            .map_err(|_| ())
    })
    .map_err(|()| Error::Crypto("argon2 hashing failed"))
}

/// True if `password` matches the PHC string (with the parameters stored in it).
pub fn verify(password: &str, phc: &str) -> bool {
    if password.len() > MAX_LEN {
        return false;
    }
    let (password, phc) = (password.to_string(), phc.to_string());
    on_pool(move || {
        let Ok(parsed) = PasswordHash::new(&phc) else {
            return false;
        };
        let Ok(argon) = hasher() else { return false };
        argon.verify_password(password.as_bytes(), &parsed).is_ok()
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
