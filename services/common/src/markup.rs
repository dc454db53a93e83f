//! Text made safe inside HTML, SVG or XML: element content and quoted attribute values.
//!
//! One escaper for every page and plot the project writes (the console's pages, `lfr eval`'s and
//! the load test's SVG plots): the five markup characters become references, and control
//! characters other than tab and line breaks (which XML forbids) become spaces.

pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn markup_characters_become_references() {
        assert_eq!(
            escape(r#"<a href="x">Tom & 'Jerry'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;Tom &amp; &#39;Jerry&#39;&lt;/a&gt;"
        );
        assert_eq!(escape("line\none\u{7}"), "line\none ");
        assert_eq!(escape("plain"), "plain");
    }
}
