//! Secrets out of URLs before they reach a log line, an error or a metric.
//!
//! Camera and NATS URLs carry credentials: in the userinfo (`rtsp://user:password@cam/...`,
//! `nats://user:password@host:4222`, a NATS token as `nats://token@host`) and in query strings
//! (`?password=...`, `&token=...`). [`url`] replaces them with `***` and leaves what helps an
//! operator find the fault: the scheme, the host, the port and the path.
//!
//! It errs on the side of hiding: the userinfo ends at the *last* `@` of the URL, so a password
//! with a raw `@`, `/`, `?` or `#` in it is still hidden whole (an `@` later in a path or query
//! hides the host too), and every parameter whose name looks like a credential is hidden wherever
//! it appears. It also works on a longer text with URLs in it (an error message from a decoder or
//! a client library), URL by URL, whitespace separating them.

/// What replaces a secret.
const HIDDEN: &str = "***";

/// Parameter names, or parts of them (compared in lower case), that carry a credential.
const SECRET_PARTS: &[&str] = &[
    "pass", "pwd", "secret", "token", "auth", "key", "sig", "cred", "session", "jwt", "seed",
];

/// Parameter names that carry a credential only when they are the whole name.
const SECRET_NAMES: &[&str] = &["pw", "psw", "p"];

/// `text` (a URL, a comma-separated list of them, or a message containing them) with every
/// credential replaced by `***`:
///
/// ```
/// use lfr_common::redact;
/// assert_eq!(redact::url("nats://lfr:s3cret@nats:4222"), "nats://***@nats:4222");
/// assert_eq!(
///     redact::url("rtsp://admin:pw@10.0.0.9/live?channel=1&password=pw"),
///     "rtsp://***@10.0.0.9/live?channel=1&password=***"
/// );
/// ```
pub fn url(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(|c: char| !c.is_whitespace()) {
        out.push_str(&rest[..start]);
        rest = &rest[start..];
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        redact_word(&rest[..end], &mut out);
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// One whitespace-free word: each URL in it (a new one starts at every `scheme://`), or the word
/// itself when it holds none (`user:password@host:4222`, which NATS clients accept too).
fn redact_word(word: &str, out: &mut String) {
    let starts = url_starts(word);
    if starts.is_empty() {
        return redact_url(word, 0, out);
    }
    out.push_str(&word[..starts[0].0]);
    for (i, &(start, authority)) in starts.iter().enumerate() {
        let end = starts.get(i + 1).map_or(word.len(), |next| next.0);
        redact_url(&word[start..end], authority - start, out);
    }
}

/// Where each `scheme://` of `word` begins, and where its authority begins (after the `//`).
fn url_starts(word: &str) -> Vec<(usize, usize)> {
    let bytes = word.as_bytes();
    let mut starts = Vec::new();
    let mut from = 0;
    while let Some(found) = word[from..].find("://") {
        let sep = from + found;
        let scheme = bytes[..sep]
            .iter()
            .rposition(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.')))
            .map_or(0, |i| i + 1);
        if scheme < sep && starts.last().is_none_or(|&(_, a)| scheme >= a) {
            starts.push((scheme, sep + 3));
        }
        from = sep + 3;
    }
    starts
}

/// One URL; its userinfo (if any) runs from `authority` to the last `@`.
fn redact_url(url: &str, authority: usize, out: &mut String) {
    let url = hide_parameters(url);
    match url[authority..].rfind('@') {
        Some(at) => {
            out.push_str(&url[..authority]);
            out.push_str(HIDDEN);
            out.push_str(&url[authority + at..]);
        }
        None => out.push_str(&url),
    }
}

/// Every `name=value` whose name looks like a credential, with its value hidden. A name runs back
/// to the previous `?`, `&` or `;` (or the start); a value runs to the next `&`, `;` or `#`.
fn hide_parameters(url: &str) -> String {
    let bytes = url.as_bytes();
    let mut out = String::with_capacity(url.len());
    let (mut copied, mut name_start, mut i) = (0, 0, 0);
    while i < bytes.len() {
        match bytes[i] {
            b'?' | b'&' | b';' => name_start = i + 1,
            b'=' if is_secret(&url[name_start..i]) => {
                let end = url[i + 1..]
                    .find(['&', ';', '#'])
                    .map_or(url.len(), |e| i + 1 + e);
                out.push_str(&url[copied..=i]);
                out.push_str(HIDDEN);
                copied = end;
                i = end;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    out.push_str(&url[copied..]);
    out
}

fn is_secret(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    SECRET_NAMES.contains(&name.as_str()) || SECRET_PARTS.iter().any(|part| name.contains(part))
}

#[cfg(test)]
mod tests {
    use super::url;

    #[test]
    fn userinfo_is_hidden_and_the_rest_kept() {
        for (given, shown) in [
            ("nats://user:secret@host:4222", "nats://***@host:4222"),
            ("nats://s3cr3t-token@host:4222", "nats://***@host:4222"),
            ("tls://u:p@nats.lfr.svc:4222", "tls://***@nats.lfr.svc:4222"),
            (
                "rtsp://admin:hunter2@10.0.0.9/live",
                "rtsp://***@10.0.0.9/live",
            ),
            ("http://:only-password@cam/mjpg", "http://***@cam/mjpg"),
            ("user:secret@host:4222", "***@host:4222"),
            // Raw special characters in a password: still hidden whole.
            ("rtsp://u:p@ss@cam/x", "rtsp://***@cam/x"),
            ("rtsp://u:pa/ss@cam/x", "rtsp://***@cam/x"),
            ("rtsp://u:pa?ss#w@cam/x", "rtsp://***@cam/x"),
            ("rtsp://u:p,w@cam/x", "rtsp://***@cam/x"),
            (
                "rtsp://ü:pässwörd@kamera/straße",
                "rtsp://***@kamera/straße",
            ),
        ] {
            assert_eq!(url(given), shown, "{given}");
        }
    }

    #[test]
    fn credentials_in_query_strings_are_hidden() {
        for (given, shown) in [
            (
                "rtsp://cam/x?password=hunter2",
                "rtsp://cam/x?password=***",
            ),
            (
                "http://cam/video.cgi?user=admin&pwd=hunter2&channel=1",
                "http://cam/video.cgi?user=admin&pwd=***&channel=1",
            ),
            (
                "rtsp://cam/x?pass=a;token=b;key=c#frag",
                "rtsp://cam/x?pass=***;token=***;key=***#frag",
            ),
            (
                "https://cam/s?auth=a&API_KEY=b&Access_Token=c&sig=d&pw=e&p=f&PassWord=g",
                "https://cam/s?auth=***&API_KEY=***&Access_Token=***&sig=***&pw=***&p=***&PassWord=***",
            ),
            (
                "rtsp://u:hunter2@cam/x?password=hunter2",
                "rtsp://***@cam/x?password=***",
            ),
            // An `@` in the query hides the host too, never a secret.
            (
                "rtsp://cam/x?email=a@b.org&password=hunter2",
                "rtsp://***@b.org&password=***",
            ),
            ("password=hunter2", "password=***"),
        ] {
            assert_eq!(url(given), shown, "{given}");
        }
    }

    #[test]
    fn lists_and_messages_are_redacted_url_by_url() {
        assert_eq!(
            url("nats://a:b@h1:4222,nats://c:d@h2:4222"),
            "nats://***@h1:4222,nats://***@h2:4222"
        );
        assert_eq!(
            url("cannot open rtsp://u:pw@cam/x?token=t1 (timeout)\tthen nats://tok@h"),
            "cannot open rtsp://***@cam/x?token=*** (timeout)\tthen nats://***@h"
        );
    }

    #[test]
    fn what_holds_no_credential_is_unchanged() {
        for plain in [
            "",
            "   ",
            "nats://127.0.0.1:4222",
            "nats://a:4222,nats://b:4222",
            "rtsp://cam/Streaming/Channels/101?channel=1&subtype=0",
            "/dev/video0",
            "v4l2:/dev/video0",
            "/srv/recordings/gate-1.mp4",
            "no decoder accepted it",
            "://",
            "a://",
        ] {
            assert_eq!(url(plain), plain);
        }
    }

    #[test]
    fn no_secret_survives() {
        let secret = "hunter2";
        for given in [
            format!("rtsp://user:{secret}@127.0.0.1:1/x?password={secret}"),
            format!("rtsp://{secret}@cam"),
            format!("nats://u:{secret}@a:4222,nats://u:{secret}@b:4222"),
            format!("http://cam/x?a=1&token={secret}&b=2"),
            format!("http://cam/x?a=1&token={secret}&password={secret}"),
            format!("error: rtsp://u:{secret}@cam/x?pwd={secret}: refused"),
        ] {
            let shown = url(&given);
            assert!(!shown.contains(secret), "{given} -> {shown}");
        }
    }
}
