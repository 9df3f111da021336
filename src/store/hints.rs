//! What a failed object-store request most likely means, and which variable
//! or flag to check: credentials, region, endpoint, bucket or network. Read
//! from the error object_store returns (its backend name and the HTTP status
//! and error code the service answered), so it needs no extra request.

/// The backend of a failed request, as object_store names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    S3,
    Azure,
    Gcs,
    Other,
}

fn backend(url: &str) -> Backend {
    match url.split_once("://").map(|(s, _)| s) {
        Some("s3") => Backend::S3,
        Some("az" | "azure" | "abfs") => Backend::Azure,
        Some("gs") => Backend::Gcs,
        _ => Backend::Other,
    }
}

/// One category of failure with what to check, e.g.
/// `credentials rejected: check AWS_ACCESS_KEY_ID ...`. Empty when the error
/// says nothing recognisable.
pub fn hint(url: &str, e: &object_store::Error) -> String {
    let mut text = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        text.push_str(": ");
        text.push_str(&s.to_string());
        src = s.source();
    }
    classify(backend(url), &text)
        .map(|h| format!(" ({h})"))
        .unwrap_or_default()
}

fn has(text: &str, needles: &[&str]) -> bool {
    needles.iter().any(|n| text.contains(&n.to_lowercase()))
}

fn classify(b: Backend, text: &str) -> Option<String> {
    let t = text.to_lowercase();
    let (creds, region, endpoint) = match b {
        Backend::S3 => (
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE and ~/.aws/credentials, or the instance role)",
            "AWS_REGION or --region",
            "AWS_ENDPOINT_URL or --endpoint-url (and AWS_ALLOW_HTTP=true for an http:// endpoint)",
        ),
        Backend::Azure => (
            "AZURE_STORAGE_ACCOUNT_NAME with AZURE_STORAGE_ACCOUNT_KEY or AZURE_STORAGE_SAS_TOKEN",
            "the account's region",
            "AZURE_STORAGE_ACCOUNT_NAME, --endpoint-url, or AZURE_STORAGE_USE_EMULATOR for Azurite",
        ),
        Backend::Gcs => (
            "GOOGLE_APPLICATION_CREDENTIALS or GOOGLE_SERVICE_ACCOUNT",
            "the bucket's location",
            "--endpoint-url (GOOGLE_STORAGE_BASE_URL style endpoints for emulators)",
        ),
        Backend::Other => return None,
    };
    if has(
        &t,
        &[
            "url scheme is not allowed",
            "builder error",
            "http:// ",
            "https is required",
        ],
    ) && has(&t, &["scheme", "http"])
    {
        return Some(format!("endpoint: plain http refused; check {endpoint}"));
    }
    if has(
        &t,
        &[
            "permanentredirect",
            "authorizationheadermalformed",
            "illegallocationconstraint",
            "wrong region",
            "301 moved permanently",
            "incorrect region",
        ],
    ) {
        return Some(format!(
            "region: the bucket is in another region; check {region}"
        ));
    }
    if has(
        &t,
        &[
            "nosuchbucket",
            "the specified bucket does not exist",
            "containernotfound",
            "the specified container does not exist",
            "bucket does not exist",
            "not found: bucket",
        ],
    ) {
        return Some(
            "bucket: it does not exist (or is not visible to these credentials); check the bucket or container name in --store"
                .into(),
        );
    }
    if has(
        &t,
        &[
            "invalidaccesskeyid",
            "signaturedoesnotmatch",
            "invalidclienttokenid",
            "expiredtoken",
            "authenticationfailed",
            "authorizationfailure",
            "invalid_grant",
            "unauthenticated",
            "401 unauthorized",
            "403 forbidden",
            "accessdenied",
            "access denied",
            "permission denied",
            "missing credentials",
            "no credentials",
            "failed to load credentials",
            "credential",
        ],
    ) {
        return Some(format!("credentials: missing or rejected; check {creds}"));
    }
    if has(
        &t,
        &[
            "dns error",
            "failed to lookup address",
            "name or service not known",
            "connection refused",
            "tcp connect error",
            "connection reset",
            "timed out",
            "timeout",
            "error sending request",
            "certificate",
            "tls handshake",
            "network is unreachable",
        ],
    ) {
        let tls = if has(&t, &["certificate", "tls handshake"]) {
            " (TLS: check the endpoint's scheme and AWS_CA_BUNDLE/SSL_CERT_FILE)"
        } else {
            ""
        };
        return Some(format!(
            "network: cannot reach the store{tls}; check the network and proxy settings, and {endpoint}"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn categories() {
        let s3 = |t: &str| classify(Backend::S3, t).unwrap_or_default();
        assert!(s3("Server returned non-success status code 403 Forbidden: <Code>InvalidAccessKeyId</Code>").starts_with("credentials"));
        assert!(s3("<Code>SignatureDoesNotMatch</Code>").contains("AWS_SECRET_ACCESS_KEY"));
        assert!(
            s3("<Code>PermanentRedirect</Code> The bucket you are attempting")
                .starts_with("region")
        );
        assert!(
            s3("<Code>AuthorizationHeaderMalformed</Code> the region 'us-east-1' is wrong")
                .contains("AWS_REGION")
        );
        assert!(s3("404 Not Found: <Code>NoSuchBucket</Code>").starts_with("bucket"));
        assert!(s3("error sending request for url (http://127.0.0.1:1/b): tcp connect error: Connection refused (os error 111)").contains("AWS_ENDPOINT_URL"));
        assert!(s3("dns error: failed to lookup address information").starts_with("network"));
        assert!(s3("builder error: URL scheme is not allowed").contains("AWS_ALLOW_HTTP"));
        let az = |t: &str| classify(Backend::Azure, t).unwrap_or_default();
        assert!(
            az("403 Server failed to authenticate the request. AuthenticationFailed")
                .contains("AZURE_STORAGE_ACCOUNT_KEY")
        );
        assert!(az("<Code>ContainerNotFound</Code>").starts_with("bucket"));
        let gcs = |t: &str| classify(Backend::Gcs, t).unwrap_or_default();
        assert!(
            gcs("Error getting token: invalid_grant").contains("GOOGLE_APPLICATION_CREDENTIALS")
        );
        assert!(gcs("The specified bucket does not exist.").starts_with("bucket"));
        assert!(classify(Backend::S3, "something else entirely").is_none());
        assert!(classify(Backend::Other, "connection refused").is_none());
    }
}
