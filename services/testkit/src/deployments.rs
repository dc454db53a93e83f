//! Deployment records for tests that build one directly in the store: the governance record every
//! authorisation needs, filled in with obviously fictitious values.

use lfr_watchlist::deployment::Governance;

/// A complete governance record (gold, silver, bronze, objectives, case, signage).
pub fn governance() -> Governance {
    Governance {
        gold: "ACC Gold".into(),
        silver: "Supt Silver".into(),
        bronze: "Insp Bronze".into(),
        objectives: "Locate wanted offenders".into(),
        intelligence_case: "INT/TEST/1".into(),
        signage: "Signs at every entrance".into(),
    }
}
