//! Percentiles and small numeric helpers for the reports.

use std::time::Duration;

/// p50, p99 and max of a set of microsecond values, in milliseconds.
#[derive(Debug, Clone, Copy, Default, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct Spread {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub count: u64,
}

impl Spread {
    pub fn of_micros(mut values: Vec<u32>) -> Self {
        if values.is_empty() {
            return Self::default();
        }
        values.sort_unstable();
        let at = |q: f64| {
            let index = ((values.len() as f64 * q).ceil() as usize).clamp(1, values.len()) - 1;
            f64::from(values[index]) / 1000.0
        };
        Self {
            p50_ms: at(0.50),
            p99_ms: at(0.99),
            max_ms: at(1.0),
            count: values.len() as u64,
        }
    }

    pub fn of_durations(values: impl IntoIterator<Item = Duration>) -> Self {
        Self::of_micros(
            values
                .into_iter()
                .map(|d| u32::try_from(d.as_micros()).unwrap_or(u32::MAX))
                .collect(),
        )
    }
}

pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let spread = Spread::of_micros((1..=100).map(|v| v * 1000).collect());
        assert_eq!(
            (spread.p50_ms, spread.p99_ms, spread.max_ms),
            (50.0, 99.0, 100.0)
        );
        assert_eq!(Spread::of_micros(vec![7000]).p99_ms, 7.0);
        assert_eq!(Spread::of_micros(Vec::new()).count, 0);
    }
}
