//! What the generated OpenAPI document needs beyond the handlers' annotations: the statuses
//! every operation can answer, and request schemas closed as the server closes them.

use utoipa::openapi::OpenApi;

/// Completes the document generated from the handlers.
pub(super) fn complete(doc: &mut OpenApi) {
    add_generic_problems(doc);
    close_request_bodies(doc);
}

/// Adds the problems any operation can answer (the generic codes) where a handler's own
/// annotation does not already describe that status: 500 everywhere; 401 on every bearer
/// operation; 503 wherever the request deadline, the database or Redis can intervene (all
/// but liveness); the body problems wherever a body is read.
fn add_generic_problems(doc: &mut OpenApi) {
    for (path, item) in doc.paths.paths.iter_mut() {
        let liveness = path == "/healthz";
        for operation in operations_mut(item) {
            let mut generic = vec![("500", "`internal`: logged with the request id")];
            if operation
                .security
                .as_ref()
                .is_some_and(|requirements| !requirements.is_empty())
            {
                generic.push((
                    "401",
                    "`unauthorized`: the bearer token is missing, malformed, expired or revoked",
                ));
            }
            if !liveness {
                generic.push((
                    "503",
                    "`overloaded` or `unavailable` (the cause named in `detail`), with Retry-After",
                ));
            }
            if operation.request_body.is_some() {
                generic.push(("400", "`malformed_body` or `validation_failed`"));
                generic.push(("413", "`payload_too_large`: body over 64 KiB"));
                generic.push((
                    "415",
                    "`unsupported_media_type`: body not sent as application/json",
                ));
                generic.push((
                    "408",
                    "`request_timeout`: the body did not arrive within LATCHKEY_BODY_TIMEOUT of the headers",
                ));
            }
            for (status, description) in generic {
                operation
                    .responses
                    .responses
                    .entry(status.to_owned())
                    .or_insert_with(|| problem_response(description));
            }
        }
    }
}

/// Marks every request body's schema `additionalProperties: false`: the server refuses unknown
/// fields (`validation_failed`), so the document must not invite them. The two PATCH bodies
/// are compositions (`allOf`) and stay open in the schema; the server refuses the same there.
fn close_request_bodies(doc: &mut OpenApi) {
    use utoipa::openapi::RefOr;
    use utoipa::openapi::schema::{AdditionalProperties, Schema};
    let mut bodies = Vec::new();
    for item in doc.paths.paths.values_mut() {
        for operation in operations_mut(item) {
            let Some(RefOr::T(body)) = &operation.request_body else {
                continue;
            };
            for content in body.content.values() {
                if let RefOr::T(content) = content
                    && let Some(RefOr::Ref(reference)) = &content.schema
                {
                    let name = reference
                        .ref_location
                        .rsplit('/')
                        .next()
                        .unwrap_or_default();
                    bodies.push(name.to_owned());
                }
            }
        }
    }
    let Some(components) = doc.components.as_mut() else {
        return;
    };
    for name in bodies {
        if let Some(RefOr::T(Schema::Object(object))) = components.schemas.get_mut(&name) {
            object.additional_properties = Some(Box::new(AdditionalProperties::FreeForm(false)));
        }
    }
}

/// Every operation of a documented path.
pub(super) fn operations_mut(
    item: &mut utoipa::openapi::PathItem,
) -> impl Iterator<Item = &mut utoipa::openapi::path::Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.patch,
    ]
    .into_iter()
    .flatten()
}

/// A documented problem answer.
pub(super) fn problem_response(
    description: &str,
) -> utoipa::openapi::RefOr<utoipa::openapi::response::Response> {
    use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
    let content = ContentBuilder::new()
        .schema(Some(Ref::from_schema_name("Problem")))
        .build();
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content("application/problem+json", content)
            .build(),
    )
}
