//! Values that devices spell in several ways, read in one place.

/// An on/off state (`Status` of a catalog item, `Online` of a device status, and the like),
/// read leniently: `ON`, `ONLINE` and `1` are on; `OFF`, `OFFLINE` and `0` are off; in any
/// case and with surrounding whitespace. Anything else is `None`.
///
/// The standard writes `ON`/`OFF` in catalogs and `ONLINE`/`OFFLINE` in device status
/// answers; devices mix them (`Online`, `on`), and some write `1`/`0`.
///
/// ```
/// use gb28181::manscdp::on_off;
/// assert_eq!(on_off(" Online "), Some(true));
/// assert_eq!(on_off("OFF"), Some(false));
/// assert_eq!(on_off("0"), Some(false));
/// assert_eq!(on_off("VLOST"), None);
/// ```
pub fn on_off(s: &str) -> Option<bool> {
    let t = s.trim();
    if t.eq_ignore_ascii_case("ON") || t.eq_ignore_ascii_case("ONLINE") || t == "1" {
        Some(true)
    } else if t.eq_ignore_ascii_case("OFF") || t.eq_ignore_ascii_case("OFFLINE") || t == "0" {
        Some(false)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::on_off;

    #[test]
    fn every_spelling_devices_send() {
        for (s, v) in [
            ("ON", Some(true)),
            ("on", Some(true)),
            ("Online", Some(true)),
            ("ONLINE", Some(true)),
            ("1", Some(true)),
            (" ON\r\n", Some(true)),
            ("OFF", Some(false)),
            ("off", Some(false)),
            ("OFFLINE", Some(false)),
            ("Offline", Some(false)),
            ("0", Some(false)),
            ("", None),
            ("ONN", None),
            ("2", None),
        ] {
            assert_eq!(on_off(s), v, "{s:?}");
        }
    }
}
