//! Which origins may see the bearer token: the API URL's, the token URL's and
//! the configured extra download hosts. Everything else gets no token, and
//! plain http gets it only when the API URL itself is http (a local KODE in
//! tests): in production the token never travels in clear.

use url::Url;

use super::ApiError;

/// One allowed origin: scheme, host and port must all match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Origin {
    scheme: String,
    host: String,
    port: u16,
}

impl Origin {
    fn of(url: &Url) -> Result<Origin, ApiError> {
        let host = url
            .host_str()
            .ok_or_else(|| ApiError::Invalid(format!("URL {url} has no host")))?;
        let port = url
            .port_or_known_default()
            .ok_or_else(|| ApiError::Invalid(format!("URL {url} has no known port")))?;
        Ok(Origin {
            scheme: url.scheme().to_owned(),
            host: host.to_ascii_lowercase(),
            port,
        })
    }

    fn matches(&self, url: &Url) -> bool {
        url.scheme() == self.scheme
            && url
                .host_str()
                .is_some_and(|h| h.eq_ignore_ascii_case(&self.host))
            && url.port_or_known_default() == Some(self.port)
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
    }
}

#[derive(Debug, Clone)]
pub(crate) struct AllowedHosts {
    origins: Vec<Origin>,
}

impl AllowedHosts {
    /// Refuses an http token URL or extra host unless the API URL is http.
    pub(crate) fn new(api_url: &Url, auth_url: &Url, extra: &[String]) -> Result<Self, ApiError> {
        let mut origins = vec![Origin::of(api_url)?];
        let auth = Origin::of(auth_url)?;
        if auth.scheme == "http" && api_url.scheme() != "http" {
            return Err(ApiError::Invalid(format!(
                "the token URL {auth} is plain http while the API URL is not: the \
                 credentials and the token would travel in clear"
            )));
        }
        origins.push(auth);
        for entry in extra {
            origins.push(parse_host_entry(entry, api_url)?);
        }
        origins.dedup();
        Ok(Self { origins })
    }

    pub(crate) fn allows(&self, url: &Url) -> bool {
        self.origins.iter().any(|o| o.matches(url))
    }

    /// For error messages: every allowed origin.
    pub(crate) fn describe(&self) -> String {
        self.origins
            .iter()
            .map(Origin::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A `DOWNLOAD_HOSTS` entry: `host` (https on port 443) or
/// `scheme://host[:port]`. `host:port` alone is refused rather than guessed
/// at (is `files:80` meant as http?), as is anything with a path,
/// credentials or query; `http://` only when `api_url` is http itself.
pub(crate) fn parse_host_entry(entry: &str, api_url: &Url) -> Result<Origin, ApiError> {
    let entry = entry.trim();
    let invalid = || {
        ApiError::Invalid(format!(
            "download host {entry:?} is neither a host nor scheme://host[:port]"
        ))
    };
    let origin = match entry.split_once("://") {
        Some((scheme, rest)) => {
            if !matches!(scheme, "http" | "https")
                || rest.is_empty()
                || rest.trim_end_matches('/').contains(['/', '@', '?', '#'])
            {
                return Err(invalid());
            }
            let url = Url::parse(entry).map_err(|_| invalid())?;
            Origin::of(&url).map_err(|_| invalid())?
        }
        None => {
            if entry.is_empty() || entry.contains([':', '/', '@', '?', '#']) {
                return Err(invalid());
            }
            let url = Url::parse(&format!("https://{entry}")).map_err(|_| invalid())?;
            Origin::of(&url).map_err(|_| invalid())?
        }
    };
    if origin.scheme == "http" && api_url.scheme() != "http" {
        return Err(ApiError::Invalid(format!(
            "download host {entry:?} is plain http, which the KODE token may only use \
             when the API URL is http too; use https://"
        )));
    }
    Ok(origin)
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

/// `scheme://host[:port]` of a URL for messages about where the token may
/// go, where http against https matters.
pub(crate) fn origin_of(url: &Url) -> String {
    format!("{}://{}", url.scheme(), host_of(url))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    const API: &str = "https://beta-api.ambita.com";

    fn hosts(extra: &[&str]) -> AllowedHosts {
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        AllowedHosts::new(
            &url(API),
            &url("https://auth.ambita.com:8443/authentication/v2/token"),
            &extra,
        )
        .unwrap()
    }

    #[test]
    fn api_and_auth_origins_are_allowed_on_their_own_scheme_and_port_only() {
        let h = hosts(&[]);
        assert!(h.allows(&url("https://beta-api.ambita.com/shopping/v2/assets/1")));
        assert!(h.allows(&url("https://BETA-API.ambita.com:443/x")));
        assert!(!h.allows(&url("https://beta-api.ambita.com:8443/x")));
        assert!(!h.allows(&url("http://beta-api.ambita.com/x")));
        assert!(h.allows(&url("https://auth.ambita.com:8443/x")));
        assert!(!h.allows(&url("https://auth.ambita.com/x")));
        assert!(!h.allows(&url("http://auth.ambita.com:8443/x")));
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
    fn a_bare_extra_host_means_https_on_its_default_port() {
        let h = hosts(&["files.ambita.com", "https://cdn.ambita.com:9000/"]);
        assert!(h.allows(&url("https://files.ambita.com/a")));
        assert!(!h.allows(&url("http://files.ambita.com/a")));
        assert!(!h.allows(&url("http://files.ambita.com:81/a")));
        assert!(!h.allows(&url("https://files.ambita.com:8443/a")));
        assert!(h.allows(&url("https://cdn.ambita.com:9000/a")));
        assert!(!h.allows(&url("https://cdn.ambita.com/a")));
        assert_eq!(
            h.describe(),
            "https://beta-api.ambita.com:443, https://auth.ambita.com:8443, \
             https://files.ambita.com:443, https://cdn.ambita.com:9000"
        );
    }

    #[test]
    fn plain_http_is_refused_unless_the_api_url_is_http() {
        let err = AllowedHosts::new(
            &url(API),
            &url(API),
            &["http://files.ambita.com".to_owned()],
        )
        .unwrap_err();
        assert!(err.to_string().contains("plain http"), "{err}");
        let err =
            AllowedHosts::new(&url(API), &url("http://auth.ambita.com/token"), &[]).unwrap_err();
        assert!(err.to_string().contains("plain http"), "{err}");

        let local = url("http://127.0.0.1:8099");
        let h = AllowedHosts::new(&local, &local, &["http://127.0.0.1:8100".to_owned()]).unwrap();
        assert!(h.allows(&url("http://127.0.0.1:8099/x")));
        assert!(h.allows(&url("http://127.0.0.1:8100/x")));
        assert!(!h.allows(&url("http://127.0.0.1:8101/x")));
    }

    #[test]
    fn malformed_host_entries_are_refused() {
        for bad in [
            "",
            "x.com:8443",
            "x.com/path",
            "user@x.com",
            "ftp://x.com",
            "https://x.com/path",
            "https://user@x.com",
            "https://x.com?a=b",
            "https://x.com:notaport",
            "https://x.com:70000",
            "https://",
        ] {
            assert!(parse_host_entry(bad, &url(API)).is_err(), "{bad:?}");
        }
        assert_eq!(
            parse_host_entry(" Files.Example ", &url(API)).unwrap(),
            Origin {
                scheme: "https".into(),
                host: "files.example".into(),
                port: 443
            }
        );
        assert_eq!(
            parse_host_entry("https://Files.Example:8443", &url(API)).unwrap(),
            Origin {
                scheme: "https".into(),
                host: "files.example".into(),
                port: 8443
            }
        );
    }
}
