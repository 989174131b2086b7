//! What the kernel says about the server process: CPU time, resident memory and open file
//! descriptors, read from `/proc/<pid>/` (Linux only, like the rest of this tool).

use std::time::Duration;

/// One reading of a process.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// User + system time of all its threads so far.
    pub cpu: Duration,
    /// Resident set size.
    pub rss_bytes: u64,
    pub open_fds: u64,
}

impl Sample {
    pub fn read(pid: u32) -> Result<Self, String> {
        Ok(Self {
            cpu: cpu_time(pid)?,
            rss_bytes: rss_bytes(pid)?,
            open_fds: open_fds(pid)?,
        })
    }
}

/// utime + stime from `/proc/<pid>/stat` (fields 14 and 15, in clock ticks).
pub fn cpu_time(pid: u32) -> Result<Duration, String> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
    // The command name (field 2) is in parentheses and may hold spaces: count after its end.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| format!("{path}: unexpected format"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state), so field N is at index N - 3.
    let ticks = |index: usize| -> Result<u64, String> {
        fields
            .get(index)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| format!("{path}: no field {}", index + 3))
    };
    let total = ticks(14 - 3)? + ticks(15 - 3)?;
    Ok(Duration::from_secs_f64(
        total as f64 / ticks_per_second() as f64,
    ))
}

fn ticks_per_second() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .and_then(|t| u64::try_from(t).ok())
        .filter(|&t| t > 0)
        .unwrap_or(100)
}

/// `VmRSS` from `/proc/<pid>/status`.
pub fn rss_bytes(pid: u32) -> Result<u64, String> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| {
            value
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map(|kib| kib * 1024)
        .ok_or_else(|| format!("{path}: no VmRSS line"))
}

pub fn open_fds(pid: u32) -> Result<u64, String> {
    let path = format!("/proc/{pid}/fd");
    let entries = std::fs::read_dir(&path).map_err(|e| format!("cannot list {path}: {e}"))?;
    Ok(entries.count() as u64)
}

/// Raises this process's open-file limit to its hard limit (servers started afterwards inherit
/// it): the benchmarks' 19,000 streams need 19,000 descriptors on each side.
pub fn raise_open_file_limit() -> u64 {
    rlimit::increase_nofile_limit(u64::MAX).unwrap_or(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let sample = Sample::read(std::process::id()).unwrap();
        assert!(sample.rss_bytes > 1024 * 1024, "{sample:?}");
        assert!(sample.open_fds >= 3, "{sample:?}");
        let spin = std::time::Instant::now();
        while spin.elapsed() < Duration::from_millis(50) {
            std::hint::black_box(spin.elapsed());
        }
        assert!(cpu_time(std::process::id()).unwrap() > Duration::ZERO);
    }
}
