//! Which hosts may see the bearer token: the API host, the token host and the
//! configured extra download hosts. Everything else gets no token.

use url::Url;

use super::ApiError;

/// One allowed `host[:port]`. Without a port, any port of that host matches
/// (a `DOWNLOAD_HOSTS` entry names a host, not a listener).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HostPattern {
    host: String,
    port: Option<u16>,
}

#[derive(Debug, Clone)]
pub(crate) struct AllowedHosts {
    patterns: Vec<HostPattern>,
}

impl AllowedHosts {
    /// The API and token URLs are matched with their exact (or default) port.
    pub(crate) fn new(api_url: &Url, auth_url: &Url, extra: &[String]) -> Result<Self, ApiError> {
        let mut patterns = Vec::new();
        for url in [api_url, auth_url] {
            let host = url
                .host_str()
                .ok_or_else(|| ApiError::Invalid(format!("URL {url} has no host")))?;
            patterns.push(HostPattern {
                host: host.to_ascii_lowercase(),
                port: url.port_or_known_default(),
            });
        }
        for entry in extra {
            patterns.push(parse_host_entry(entry)?);
        }
        patterns.dedup();
        Ok(Self { patterns })
    }

    pub(crate) fn allows(&self, url: &Url) -> bool {
        let Some(host) = url.host_str() else {
            return false;
        };
        let port = url.port_or_known_default();
        self.patterns
            .iter()
            .any(|p| p.host.eq_ignore_ascii_case(host) && (p.port.is_none() || p.port == port))
    }

    /// For error messages: `host[:port]` of every allowed entry.
    pub(crate) fn describe(&self) -> String {
        self.patterns
            .iter()
            .map(|p| match p.port {
                Some(port) => format!("{}:{port}", p.host),
                None => p.host.clone(),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// `host` or `host:port`; anything with a scheme, path or credentials is a
/// configuration mistake and refused rather than guessed at.
pub(crate) fn parse_host_entry(entry: &str) -> Result<HostPattern, ApiError> {
    let entry = entry.trim();
    let invalid = || ApiError::Invalid(format!("download host {entry:?} is not host[:port]"));
    if entry.is_empty() || entry.contains(['/', '@', '?', '#']) {
        return Err(invalid());
    }
    let url = Url::parse(&format!("http://{entry}")).map_err(|_| invalid())?;
    let host = url.host_str().ok_or_else(invalid)?.to_ascii_lowercase();
    let has_port = entry
        .rsplit_once(':')
        .is_some_and(|(_, p)| !p.contains(']'));
    let port = if has_port {
        // Url drops port 80 for http; read it from the entry itself.
        let raw = entry.rsplit_once(':').map(|(_, p)| p).unwrap_or_default();
        Some(raw.parse::<u16>().map_err(|_| invalid())?)
    } else {
        None
    };
    Ok(HostPattern { host, port })
}

/// `host[:port]` of a URL for messages (never its path or query, which may
/// carry signatures).
pub(crate) fn host_of(url: &Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_owned(),
        (None, _) => "(no host)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    fn hosts(extra: &[&str]) -> AllowedHosts {
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        AllowedHosts::new(
            &url("https://beta-api.ambita.com"),
            &url("http://127.0.0.1:8099/authentication/v2/token"),
            &extra,
        )
        .unwrap()
    }

    #[test]
    fn api_and_auth_hosts_are_allowed_on_their_own_port_only() {
        let h = hosts(&[]);
        assert!(h.allows(&url("https://beta-api.ambita.com/shopping/v2/assets/1")));
        assert!(h.allows(&url("https://BETA-API.ambita.com:443/x")));
        assert!(!h.allows(&url("https://beta-api.ambita.com:8443/x")));
        assert!(!h.allows(&url("http://beta-api.ambita.com/x")));
        assert!(h.allows(&url("http://127.0.0.1:8099/x")));
        assert!(!h.allows(&url("http://127.0.0.1:8100/x")));
    }

    #[test]
    fn look_alike_hosts_are_refused() {
        let h = hosts(&[]);
        for bad in [
            "https://beta-api.ambita.com.evil.example/x",
            "https://evil.example/beta-api.ambita.com",
            "https://beta-api-ambita.com/x",
            "https://user@evil.example/x",
        ] {
            assert!(!h.allows(&url(bad)), "{bad}");
        }
    }

    #[test]
    fn extra_hosts_match_any_port_unless_one_is_given() {
        let h = hosts(&["files.ambita.com", "cdn.ambita.com:9000"]);
        assert!(h.allows(&url("https://files.ambita.com/a")));
        assert!(h.allows(&url("http://files.ambita.com:81/a")));
        assert!(h.allows(&url("https://cdn.ambita.com:9000/a")));
        assert!(!h.allows(&url("https://cdn.ambita.com/a")));
        assert_eq!(
            h.describe(),
            "beta-api.ambita.com:443, 127.0.0.1:8099, files.ambita.com, cdn.ambita.com:9000"
        );
    }

    #[test]
    fn malformed_host_entries_are_refused() {
        for bad in [
            "",
            "https://x.com",
            "x.com/path",
            "user@x.com",
            "x.com:notaport",
            "x.com:70000",
        ] {
            assert!(parse_host_entry(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            parse_host_entry(" Files.Example:80 ").unwrap(),
            HostPattern {
                host: "files.example".into(),
                port: Some(80)
            }
        );
    }
}
