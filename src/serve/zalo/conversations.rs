//! Per-user conversation memory: the last N messages, forgotten after a TTL of
//! silence.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::conversation::{Message, Role};

/// Conversations by user id.
pub struct Conversations {
    max_messages: usize,
    ttl: Duration,
    users: Mutex<HashMap<String, (VecDeque<Message>, Instant)>>,
}

impl Conversations {
    /// Memory of `max_messages` per user, forgotten after `ttl` idle.
    pub fn new(max_messages: usize, ttl: Duration) -> Self {
        Conversations { max_messages: max_messages.max(1), ttl, users: Mutex::new(HashMap::new()) }
    }

    /// Appends `message` to `user`'s conversation and returns it.
    pub fn push(&self, user: &str, message: Message) -> Vec<Message> {
        let Ok(mut users) = self.users.lock() else { return vec![message] };
        let now = Instant::now();
        users.retain(|_, (_, seen)| now.duration_since(*seen) < self.ttl);
        let (messages, seen) = users.entry(user.to_string()).or_insert_with(|| (VecDeque::new(), now));
        messages.push_back(message);
        while messages.len() > self.max_messages {
            messages.pop_front();
        }
        // Never start with an assistant turn.
        while messages.front().is_some_and(|m| m.role == Role::Assistant) {
            messages.pop_front();
        }
        *seen = now;
        messages.iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_turns_and_forgets_idle_users() {
        let c = Conversations::new(3, Duration::from_secs(3600));
        for i in 0..3 {
            c.push("u", Message::user(i.to_string()));
            c.push("u", Message::assistant(format!("a{i}")));
        }
        let m = c.push("u", Message::user("3"));
        assert_eq!(m.iter().map(|m| m.content.as_deref().unwrap()).collect::<Vec<_>>(), ["2", "a2", "3"]);
        let gone = Conversations::new(3, Duration::ZERO);
        gone.push("u", Message::user("x"));
        assert_eq!(gone.push("u", Message::user("y")).len(), 1);
    }
}
