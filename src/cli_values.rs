//! Parsers for the numbers on the command line: every numeric option has a
//! range, and a value outside it is one line from clap before anything
//! starts (`--threads 100000` would otherwise clone 100,000 FUSE
//! descriptors and threads). Sizes take binary suffixes as rclone and
//! JuiceFS do: `65536`, `512K`, `64M`, `1G` (`KiB`, `MB`... are read the
//! same way: powers of 1024).

/// A size in bytes with an optional K/M/G/T suffix.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, suffix) = t.split_at(split);
    if num.is_empty() {
        return Err(format!(
            "{s:?} is not a size (use e.g. 65536, 512K, 64M, 1G)"
        ));
    }
    let n: u64 = num.parse().map_err(|_| format!("{s:?} is too large"))?;
    let shift = match suffix.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => {
            return Err(format!(
                "{s:?}: unknown size suffix {suffix:?} (use K, M, G or T)"
            ))
        }
    };
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("{s:?} is too large"))
}

/// A clap value parser for sizes in `min..=max` bytes.
pub fn size_in(min: u64, max: u64) -> impl Fn(&str) -> Result<u64, String> + Clone {
    move |s| {
        let n = parse_size(s)?;
        if n < min || n > max {
            return Err(format!(
                "{s} is out of range: {} to {}",
                show_size(min),
                show_size(max)
            ));
        }
        Ok(n)
    }
}

/// A clap value parser for integers in `min..=max`.
pub fn int_in(min: u64, max: u64) -> impl Fn(&str) -> Result<u64, String> + Clone {
    move |s| {
        let n: u64 = s
            .trim()
            .parse()
            .map_err(|_| format!("{s:?} is not a whole number"))?;
        if n < min || n > max {
            return Err(format!("{n} is out of range: {min} to {max}"));
        }
        Ok(n)
    }
}

fn show_size(n: u64) -> String {
    for (shift, unit) in [(40, "T"), (30, "G"), (20, "M"), (10, "K")] {
        if n >= 1 << shift && n.is_multiple_of(1 << shift) {
            return format!("{}{unit}", n >> shift);
        }
    }
    n.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_with_suffixes_and_ranges() {
        assert_eq!(parse_size("65536"), Ok(65536));
        assert_eq!(parse_size("512K"), Ok(512 << 10));
        assert_eq!(parse_size("64M"), Ok(64 << 20));
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("1g"), Ok(1 << 30));
        assert!(parse_size("").is_err());
        assert!(parse_size("M").is_err());
        assert!(parse_size("12X").is_err());
        assert!(parse_size("-1").is_err());
        assert!(parse_size("99999999999T").is_err());
        let p = size_in(64 << 10, 1 << 30);
        assert_eq!(p("64M"), Ok(64 << 20));
        assert_eq!(p("1K").unwrap_err(), "1K is out of range: 64K to 1G");
        let t = int_in(1, 64);
        assert_eq!(t("4"), Ok(4));
        assert!(t("0").is_err() && t("100000").is_err() && t("x").is_err());
    }
}
