//! # Roles: what a person at the console is there to do
//!
//! Every account has exactly one role. The role decides which pages exist for it and whether it
//! sees every deployment or only the ones it is assigned to:
//!
//! | role | does | deployments |
//! |---|---|---|
//! | `operator` | reviews candidate alerts: confirms or dismisses each one | assigned only |
//! | `officer` | receives confirmed alerts on a handheld | assigned only |
//! | `supervisor` | runs deployments, signs off watch lists, administers accounts | all |
//! | `auditor` | reads the audit trail and retention records, changes nothing | all |
//!
//! Roles are written in lower case everywhere (configuration, CLI, JSON, audit events).

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    Operator,
    Officer,
    Supervisor,
    Auditor,
}

impl Role {
    pub const ALL: [Role; 4] = [
        Role::Operator,
        Role::Officer,
        Role::Supervisor,
        Role::Auditor,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Operator => "operator",
            Role::Officer => "officer",
            Role::Supervisor => "supervisor",
            Role::Auditor => "auditor",
        }
    }

    /// The page a person in this role lands on after logging in.
    pub fn home(self) -> &'static str {
        match self {
            Role::Operator => "/operator",
            Role::Officer => "/handheld",
            Role::Supervisor => "/supervisor",
            Role::Auditor => "/auditor",
        }
    }

    /// Supervisors and auditors oversee every deployment; operators and officers work only the
    /// deployments they are assigned to.
    pub fn sees_all_deployments(self) -> bool {
        matches!(self, Role::Supervisor | Role::Auditor)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("no role {0:?}: operator, officer, supervisor or auditor")]
pub struct UnknownRole(String);

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Role, UnknownRole> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownRole(s.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::Role;

    #[test]
    fn roles_read_and_write_in_lower_case() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>().unwrap(), role);
            assert_eq!(serde_json::to_string(&role).unwrap(), format!("\"{role}\""));
        }
        assert!("Supervisor".parse::<Role>().is_err());
        assert!("admin".parse::<Role>().is_err());
    }

    #[test]
    fn each_role_has_its_home_page() {
        let homes: Vec<_> = Role::ALL.iter().map(|r| r.home()).collect();
        assert_eq!(homes, ["/operator", "/handheld", "/supervisor", "/auditor"]);
    }
}
