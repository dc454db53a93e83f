//! False alerts, counted: how many of a deployment's alerts operators rejected as false.
//!
//! The DPIA holds the false-alert rate under 1 in 1,000 faces compared. Operators reject false
//! alerts in the console ([`lfr_schemas::Decision::RejectedFalseAlert`]); the [`crate::Book`]
//! counts them per deployment, keeping the counts of alerts that retention has since erased.
//! Blue-list alerts are staff volunteers, not false alerts: they are left out. The faces
//! compared come from the matchers (their load reports); the rate per face compared is
//! rejected / compared, the rate per alert rejected / alerts.

/// One deployment's alerts (blue list excluded) and what operators decided.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FalseAlerts {
    /// Alerts raised on the watch list (not blue).
    pub alerts: u64,
    /// Rejected by an operator as a false alert.
    pub rejected: u64,
}

impl FalseAlerts {
    /// Rejected per alert raised; `None` before any alert.
    pub fn per_alert(&self) -> Option<f64> {
        (self.alerts > 0).then(|| self.rejected as f64 / self.alerts as f64)
    }

    /// Rejected per face compared; `None` before any face was compared.
    pub fn per_compared(&self, compared: u64) -> Option<f64> {
        (compared > 0).then(|| self.rejected as f64 / compared as f64)
    }
}

/// A rate as people read it: "0", "1 in 4,300", or "all".
pub fn one_in(rate: Option<f64>) -> String {
    match rate {
        None => "-".into(),
        Some(r) if r <= 0.0 => "0".into(),
        Some(r) if r >= 1.0 => "all".into(),
        Some(r) => format!("1 in {}", thousands((1.0 / r).round() as u64)),
    }
}

/// `4300` as `4,300`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_read_as_one_in_n() {
        let t = FalseAlerts {
            alerts: 4,
            rejected: 1,
        };
        assert_eq!(t.per_alert(), Some(0.25));
        assert_eq!(one_in(t.per_compared(4300)), "1 in 4,300");
        assert_eq!(one_in(t.per_compared(0)), "-");
        assert_eq!(one_in(FalseAlerts::default().per_compared(10)), "0");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(999), "999");
    }
}
