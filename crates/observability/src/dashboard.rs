//! The dashboard page: one self-contained HTML document (inline CSS and JS, no external
//! resources) that renders the status embedded at serve time, then polls `/api/status`.

use crate::status::StatusSnapshot;

/// The page's Content-Security-Policy: inline code only, data only from this server.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'unsafe-inline'; \
     style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

const TEMPLATE: &str = include_str!("dashboard.html");
const PLACEHOLDER: &str = "__INITIAL_STATUS__";

/// The page with `snapshot` embedded, so it shows the state at once, before its first poll.
pub(crate) fn render(snapshot: &StatusSnapshot) -> String {
    let json = serde_json::to_string(snapshot).unwrap_or_else(|_| "null".to_owned());
    TEMPLATE.replacen(PLACEHOLDER, &script_safe(&json), 1)
}

/// Escapes the characters that could end a `<script>` element or open a comment inside it; in
/// JSON they can only occur inside strings, where `\uXXXX` means the same character.
fn script_safe(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_has_one_placeholder_and_no_external_resources() {
        assert_eq!(TEMPLATE.matches(PLACEHOLDER).count(), 1);
        // The SVG namespace URI is a name, not a resource; everything else must be inline.
        for banned in [
            "src=", "href=", "url(", "@import", "<link", "<iframe", "//cdn",
        ] {
            assert!(!TEMPLATE.contains(banned), "template contains {banned}");
        }
    }

    /// The parts `scripts/check-dashboard.sh` drives in a browser must be in the page.
    #[test]
    fn page_has_the_stale_state_trades_and_collapsed_holds() {
        for needed in [
            "id=\"stale-banner\"",
            "bot unreachable",
            "data-state",
            "id=\"trades\"",
            "hold ×",
            "account authenticated",
            "broker link up",
            "trade-marker",
            "max-width: 600px",
        ] {
            assert!(TEMPLATE.contains(needed), "dashboard lacks {needed}");
        }
        // Trades come before decisions on the page.
        assert!(TEMPLATE.find("id=\"trades\"") < TEMPLATE.find("id=\"decisions\""));
    }

    #[test]
    fn script_breakouts_are_escaped() {
        let s = script_safe(r#"{"m":"</script><!-- & \u2028"}"#);
        assert!(!s.contains('<') && !s.contains('>') && !s.contains('&'));
        let back: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(back["m"], "</script><!-- & \u{2028}");
    }
}
