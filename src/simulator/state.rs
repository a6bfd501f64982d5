//! The simulator's world: teams, users, keys, user tokens, and the vendor's rules
//! about who may see and change what.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, Utc};
use rand::distributions::Alphanumeric;
use rand::Rng;

use crate::masv::KeyState;

/// A MASV user role, as far as API keys are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Manages every key of the team.
    Owner,
    /// Manages only the keys it created.
    Admin,
    /// Manages only the keys it created.
    IntegrationManager,
    /// May not manage keys at all.
    Member,
}

impl Role {
    fn manages_keys(self) -> bool {
        !matches!(self, Role::Member)
    }
}

#[derive(Debug, Clone)]
pub(crate) struct User {
    pub id: String,
    pub email: String,
    pub password: String,
    pub role: Role,
    pub teams: Vec<String>,
}

/// A key as the simulator holds it, secret included (for assertions and leak scans).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimKey {
    pub id: String,
    pub team_id: String,
    pub owner_user_id: String,
    pub name: String,
    pub description: String,
    pub state: KeyState,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub expiry: Option<DateTime<Utc>>,
    pub last_request_at: Option<DateTime<Utc>>,
    pub secret: String,
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    Unauthorized(&'static str),
    Forbidden(&'static str),
    NotFound(&'static str),
    BadRequest(String),
    Conflict(&'static str),
}

pub(crate) fn random_token(len: usize) -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

#[derive(Debug, Default)]
pub(crate) struct World {
    pub teams: BTreeMap<String, String>,
    pub users: Vec<User>,
    /// key id -> key
    pub keys: BTreeMap<String, SimKey>,
    /// team id -> key ids, in creation order
    pub by_team: HashMap<String, Vec<String>>,
    /// secret -> key id
    pub by_secret: HashMap<String, String>,
    /// user token -> (user id, issued at)
    pub tokens: HashMap<String, (String, DateTime<Utc>)>,
    pub issued: Vec<String>,
    /// Keys deleted while active (MASV allows it; the daemon must never do it).
    pub deleted_active: Vec<String>,
}

impl World {
    pub fn user_by_token(
        &self,
        token: Option<&str>,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<&User, Refusal> {
        let token = token.ok_or(Refusal::Unauthorized("missing X-User-Token"))?;
        let (user_id, issued) = self
            .tokens
            .get(token)
            .ok_or(Refusal::Unauthorized("invalid token"))?;
        if now - *issued >= ttl {
            return Err(Refusal::Unauthorized("token expired"));
        }
        self.users
            .iter()
            .find(|u| &u.id == user_id)
            .ok_or(Refusal::Unauthorized("invalid token"))
    }

    pub fn login(
        &mut self,
        email: &str,
        password: &str,
        now: DateTime<Utc>,
    ) -> Result<(User, String), Refusal> {
        let user = self
            .users
            .iter()
            .find(|u| u.email.eq_ignore_ascii_case(email) && u.password == password)
            .cloned()
            .ok_or(Refusal::Unauthorized("invalid email or password"))?;
        let token = format!(
            "eyJhbGciOiJIUzI1NiJ9.{}.{}",
            random_token(32),
            random_token(24)
        );
        self.tokens.insert(token.clone(), (user.id.clone(), now));
        self.issued.push(token.clone());
        Ok((user, token))
    }

    /// The user may manage keys in this team at all.
    pub fn check_team(&self, user: &User, team_id: &str) -> Result<(), Refusal> {
        if !self.teams.contains_key(team_id) {
            return Err(Refusal::NotFound("team not found"));
        }
        if !user.teams.iter().any(|t| t == team_id) {
            return Err(Refusal::Forbidden("not a member of this team"));
        }
        if !user.role.manages_keys() {
            return Err(Refusal::Forbidden("this role cannot manage API keys"));
        }
        Ok(())
    }

    /// Owners manage every key of their teams; Admins and Integration Managers only their own.
    pub fn check_key(&self, user: &User, key_id: &str) -> Result<(), Refusal> {
        let key = self
            .keys
            .get(key_id)
            .ok_or(Refusal::NotFound("api key not found"))?;
        if !user.teams.iter().any(|t| t == &key.team_id) {
            // Not even revealing existence to outsiders.
            return Err(Refusal::NotFound("api key not found"));
        }
        if !user.role.manages_keys() {
            return Err(Refusal::Forbidden("this role cannot manage API keys"));
        }
        if user.role != Role::Owner && key.owner_user_id != user.id {
            return Err(Refusal::Forbidden(
                "only the key's creator or a team owner can manage it",
            ));
        }
        Ok(())
    }

    pub fn visible_keys(&self, user: &User, team_id: &str) -> Vec<&SimKey> {
        self.by_team
            .get(team_id)
            .map(|ids| {
                ids.iter()
                    .filter_map(|id| self.keys.get(id))
                    .filter(|k| user.role == Role::Owner || k.owner_user_id == user.id)
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn insert_key(&mut self, key: SimKey) {
        self.by_team
            .entry(key.team_id.clone())
            .or_default()
            .push(key.id.clone());
        self.by_secret.insert(key.secret.clone(), key.id.clone());
        self.issued.push(key.secret.clone());
        self.keys.insert(key.id.clone(), key);
    }

    pub fn remove_key(&mut self, key_id: &str) -> Option<SimKey> {
        let key = self.keys.remove(key_id)?;
        if let Some(ids) = self.by_team.get_mut(&key.team_id) {
            ids.retain(|id| id != key_id);
        }
        self.by_secret.remove(&key.secret);
        Some(key)
    }

    pub fn new_secret(&self) -> String {
        random_token(48)
    }
}
