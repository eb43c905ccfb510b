//! Maps AWS SDK errors onto [`StoreError`]: what a later attempt can fix
//! (throttling, 5xx, timeouts, broken connections) becomes `Unavailable`,
//! everything else (access denied, missing bucket or table, invalid request)
//! `Permanent`. The SDK has already retried by the time we see an error, so
//! `Unavailable` means "retry the record later", not "retry now".
//! Every AWS adapter (S3, SQS, DynamoDB) classifies through this one place.

use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use crate::store::StoreError;

/// Error codes that mean "slow down" or "our side broke" even when the HTTP
/// status would not say so (DynamoDB answers throttling with a 400).
const RETRYABLE_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "KmsThrottled",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "SlowDown",
    "RequestTimeout",
    "RequestTimeoutException",
    "InternalError",
    "InternalServerError",
    "InternalFailure",
    "ServiceUnavailable",
    "TransactionConflictException",
];

/// `what` names the operation and its target (e.g. `PutObject orders/1/a/x.pdf`).
pub(super) fn classify<E>(what: &str, err: SdkError<E>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let retryable = match &err {
        SdkError::TimeoutError(_) | SdkError::ResponseError(_) => true,
        // A "user" dispatch failure is a bad request or endpoint that no retry fixes.
        SdkError::DispatchFailure(failure) => !failure.is_user(),
        SdkError::ServiceError(context) => {
            is_retryable_service_error(context.raw().status().as_u16(), context.err().code())
        }
        _ => false,
    };
    let message = format!("{what}: {}", DisplayErrorContext(&err));
    if retryable {
        StoreError::Unavailable(message)
    } else {
        StoreError::Permanent(message)
    }
}

fn is_retryable_service_error(status: u16, code: Option<&str>) -> bool {
    status >= 500
        || status == 429
        || status == 408
        || code.is_some_and(|code| RETRYABLE_CODES.contains(&code))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_s3::operation::head_object::HeadObjectError;

    #[test]
    fn server_errors_and_throttling_are_retryable() {
        assert!(is_retryable_service_error(500, None));
        assert!(is_retryable_service_error(503, Some("SlowDown")));
        assert!(is_retryable_service_error(429, None));
        assert!(is_retryable_service_error(
            400,
            Some("ProvisionedThroughputExceededException")
        ));
        assert!(is_retryable_service_error(400, Some("ThrottlingException")));
    }

    #[test]
    fn client_errors_are_permanent() {
        assert!(!is_retryable_service_error(403, Some("AccessDenied")));
        assert!(!is_retryable_service_error(404, Some("NoSuchBucket")));
        assert!(!is_retryable_service_error(
            400,
            Some("ResourceNotFoundException")
        ));
        assert!(!is_retryable_service_error(
            400,
            Some("ValidationException")
        ));
    }

    #[test]
    fn timeouts_are_unavailable_and_construction_failures_permanent() {
        let timeout: SdkError<HeadObjectError> = SdkError::timeout_error("operation timed out");
        let classified = classify("HeadObject k", timeout);
        assert!(classified.is_retryable(), "{classified}");
        assert!(classified.to_string().contains("HeadObject k"));

        let construction: SdkError<HeadObjectError> =
            SdkError::construction_failure("missing bucket");
        assert!(!classify("HeadObject k", construction).is_retryable());
    }
}
