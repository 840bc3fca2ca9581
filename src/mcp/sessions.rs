//! MCP sessions (`Mcp-Session-Id`): one table per shard, holding the sessions of the users
//! that shard owns. Bounded three ways: sessions per user (a new one ends that user's least
//! recently used: the spec lets a server end a session at any time, and its client then
//! opens a new one), sessions per shard (beyond it `initialize` is refused), and idle time
//! (a session unused that long is gone). The clock is the caller's, so this is all pure.

use std::collections::HashMap;

/// Random bytes in a session id: 128 bits, so ids cannot be guessed.
pub const SESSION_ID_BYTES: usize = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionLimits {
    pub per_user: usize,
    pub per_shard: usize,
    pub idle_ms: u64,
}

/// One session: whose it is and what was negotiated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    pub user_id: u64,
    pub version: &'static str,
    /// `notifications/initialized` arrived.
    pub initialized: bool,
    last_used_ms: u64,
    /// The table's use count at its last use: orders uses within one millisecond.
    last_use: u64,
}

/// `initialize` refused: the shard holds `per_shard` live sessions.
#[derive(Debug, PartialEq, Eq)]
pub struct TableFull;

pub struct SessionTable {
    sessions: HashMap<String, Session>,
    limits: SessionLimits,
    /// Opens and finds so far: which session was used last, whatever the clock says.
    uses: u64,
}

/// The text of a session id (lowercase hex, visible ASCII as the transport requires).
pub fn session_id(random: [u8; SESSION_ID_BYTES]) -> String {
    random.iter().map(|byte| format!("{byte:02x}")).collect()
}

impl SessionTable {
    pub fn new(limits: SessionLimits) -> SessionTable {
        assert!(limits.per_user >= 1 && limits.per_shard >= 1);
        SessionTable {
            sessions: HashMap::new(),
            limits,
            uses: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// Opens session `id` for `user_id` at `version`. Idle sessions go first; a user at
    /// `per_user` loses their least recently used one (returned, for the log).
    pub fn open(
        &mut self,
        id: String,
        user_id: u64,
        version: &'static str,
        now_ms: u64,
    ) -> Result<Option<String>, TableFull> {
        self.forget_idle(now_ms);
        let ended = if self.count_of(user_id) >= self.limits.per_user {
            self.least_recently_used(user_id)
        } else {
            None
        };
        if let Some(ended) = &ended {
            self.sessions.remove(ended);
        }
        if self.sessions.len() >= self.limits.per_shard {
            return Err(TableFull);
        }
        self.uses += 1;
        let session = Session {
            user_id,
            version,
            initialized: false,
            last_used_ms: now_ms,
            last_use: self.uses,
        };
        let replaced = self.sessions.insert(id, session);
        assert!(replaced.is_none(), "session ids are random and unique");
        debug_assert!(self.count_of(user_id) <= self.limits.per_user);
        Ok(ended)
    }

    /// The live session `id` of `user_id`, marked used now. Another user's session is not
    /// found (and not touched); an idle one is forgotten.
    pub fn find(&mut self, id: &str, user_id: u64, now_ms: u64) -> Option<&mut Session> {
        let idle_ms = self.limits.idle_ms;
        let session = self.sessions.get(id)?;
        if session.user_id != user_id {
            return None;
        }
        if now_ms.saturating_sub(session.last_used_ms) >= idle_ms {
            self.sessions.remove(id);
            return None;
        }
        self.uses += 1;
        let session = self.sessions.get_mut(id).expect("just found");
        session.last_used_ms = session.last_used_ms.max(now_ms);
        session.last_use = self.uses;
        Some(session)
    }

    /// Ends session `id` of `user_id`; false when there is none (or it is another user's).
    pub fn close(&mut self, id: &str, user_id: u64) -> bool {
        match self.sessions.get(id) {
            Some(session) if session.user_id == user_id => {
                self.sessions.remove(id);
                true
            }
            _ => false,
        }
    }

    /// Ends every session of `user_id` (the user was removed).
    pub fn close_all_of(&mut self, user_id: u64) {
        self.sessions
            .retain(|_, session| session.user_id != user_id);
    }

    fn forget_idle(&mut self, now_ms: u64) {
        let idle_ms = self.limits.idle_ms;
        self.sessions
            .retain(|_, session| now_ms.saturating_sub(session.last_used_ms) < idle_ms);
    }

    fn count_of(&self, user_id: u64) -> usize {
        let sessions = self.sessions.values();
        sessions
            .filter(|session| session.user_id == user_id)
            .count()
    }

    fn least_recently_used(&self, user_id: u64) -> Option<String> {
        let mine = self.sessions.iter().filter(|(_, s)| s.user_id == user_id);
        let oldest = mine.min_by_key(|(_, session)| session.last_use);
        oldest.map(|(id, _)| id.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: SessionLimits = SessionLimits {
        per_user: 2,
        per_shard: 3,
        idle_ms: 1_000,
    };

    fn opened(table: &mut SessionTable, id: &str, user: u64, now: u64) -> Option<String> {
        table.open(id.into(), user, "2025-11-25", now).unwrap()
    }

    #[test]
    fn ids_are_32_hex_characters() {
        let id = session_id([0xab; SESSION_ID_BYTES]);
        assert_eq!(id.len(), 32);
        assert!(id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    }

    #[test]
    fn a_user_at_the_bound_loses_the_least_recently_used_session() {
        let mut table = SessionTable::new(LIMITS);
        assert_eq!(opened(&mut table, "a", 1, 0), None);
        assert_eq!(opened(&mut table, "b", 1, 10), None);
        // "a" used after "b": "b" is the least recently used now.
        assert!(table.find("a", 1, 20).is_some());
        assert_eq!(opened(&mut table, "c", 1, 30), Some("b".to_string()));
        // Within one millisecond, the order of use decides.
        assert!(table.find("a", 1, 30).is_some());
        assert_eq!(opened(&mut table, "d", 1, 30), Some("c".to_string()));
        assert!(table.find("c", 1, 30).is_none());
        assert!(table.find("d", 1, 30).is_some());
        assert!(table.find("b", 1, 40).is_none());
        assert!(table.find("a", 1, 40).is_some());
        assert_eq!(table.len(), 2);
    }

    #[test]
    fn a_full_shard_refuses_and_idle_sessions_make_room() {
        let mut table = SessionTable::new(LIMITS);
        opened(&mut table, "a", 1, 0);
        opened(&mut table, "b", 2, 500);
        opened(&mut table, "c", 3, 600);
        assert_eq!(table.open("d".into(), 4, "2025-11-25", 900), Err(TableFull));
        assert_eq!(table.len(), 3, "a refused open changes nothing");
        // At 1000 ms "a" has been idle its whole allowance: gone, and "d" fits.
        assert_eq!(opened(&mut table, "d", 4, 1_000), None);
        assert!(table.find("a", 1, 1_000).is_none());
        assert_eq!(table.len(), 3);
    }

    #[test]
    fn sessions_are_their_users_and_expire_when_idle() {
        let mut table = SessionTable::new(LIMITS);
        opened(&mut table, "a", 1, 0);
        assert!(table.find("a", 2, 1).is_none(), "another user's session");
        assert!(!table.close("a", 2));
        let session = table.find("a", 1, 999).unwrap();
        assert_eq!((session.user_id, session.version), (1, "2025-11-25"));
        session.initialized = true;
        assert!(table.find("a", 1, 1_998).unwrap().initialized);
        assert!(table.find("a", 1, 2_998).is_none(), "idle for 1000 ms");
        assert!(table.is_empty());
        opened(&mut table, "b", 1, 0);
        assert!(table.close("b", 1));
        assert!(!table.close("b", 1));
        opened(&mut table, "c", 1, 0);
        opened(&mut table, "d", 2, 0);
        table.close_all_of(1);
        assert_eq!(table.len(), 1);
    }
}
