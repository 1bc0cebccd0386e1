//! What the generated OpenAPI document needs beyond the handlers' annotations: the statuses
//! every operation can answer, request schemas closed and constrained as the server judges
//! them, and the constraints that come from the configuration (roles, password length).

use utoipa::openapi::schema::{AdditionalProperties, Object, Schema};
use utoipa::openapi::{OpenApi, RefOr};

/// Completes the document generated from the handlers, for the service `config` describes.
pub(super) fn complete(doc: &mut OpenApi, config: &crate::config::Config) {
    add_generic_problems(doc);
    close_request_bodies(doc);
    constrain_from_config(doc, config);
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

/// Makes every request body's schema the object the server reads: compositions (`allOf`, from
/// flattened fields) merged into one object, `additionalProperties: false` (unknown fields are
/// refused with `validation_failed`), the "exactly one of" rules, and the body optional where
/// no field is required (no body reads as `{}`).
fn close_request_bodies(doc: &mut OpenApi) {
    let Some(components) = doc.components.as_mut() else {
        return;
    };
    for item in doc.paths.paths.values_mut() {
        for operation in operations_mut(item) {
            let Some(RefOr::T(body)) = &mut operation.request_body else {
                continue;
            };
            let mut required = false;
            for name in body_schema_names(body) {
                let merged = match components.schemas.get(&name) {
                    Some(RefOr::T(Schema::AllOf(all_of))) => {
                        let mut merged = merge_all_of(&all_of.items, &components.schemas);
                        if all_of.description.is_some() {
                            merged.description.clone_from(&all_of.description);
                        }
                        Some(merged)
                    }
                    _ => None,
                };
                if let Some(merged) = merged {
                    components
                        .schemas
                        .insert(name.clone(), RefOr::T(Schema::Object(merged)));
                }
                if let Some(RefOr::T(Schema::Object(object))) = components.schemas.get_mut(&name) {
                    object.additional_properties =
                        Some(Box::new(AdditionalProperties::FreeForm(false)));
                }
                if let Some(rule) = one_of_rule(&name) {
                    rule(components);
                }
                required |= match components.schemas.get(&name) {
                    Some(RefOr::T(Schema::Object(object))) => {
                        !object.required.is_empty() || object.min_properties.is_some_and(|n| n > 0)
                    }
                    _ => true,
                };
            }
            body.required = Some(if required {
                utoipa::openapi::Required::True
            } else {
                utoipa::openapi::Required::False
            });
        }
    }
}

/// The component names a request body refers to.
fn body_schema_names(body: &utoipa::openapi::request_body::RequestBody) -> Vec<String> {
    body.content
        .values()
        .filter_map(|content| match content {
            RefOr::T(content) => match &content.schema {
                Some(RefOr::Ref(reference)) => reference.ref_location.rsplit('/').next(),
                _ => None,
            },
            RefOr::Ref(_) => None,
        })
        .map(str::to_owned)
        .collect()
}

/// One object with the properties and required fields of every part of an `allOf`.
fn merge_all_of(
    parts: &[RefOr<Schema>],
    schemas: &std::collections::BTreeMap<String, RefOr<Schema>>,
) -> Object {
    let mut merged = Object::new();
    for part in parts {
        let part = match part {
            RefOr::Ref(reference) => reference
                .ref_location
                .rsplit('/')
                .next()
                .and_then(|name| schemas.get(name)),
            schema => Some(schema),
        };
        if let Some(RefOr::T(Schema::Object(object))) = part {
            merged.properties.extend(object.properties.clone());
            merged.required.extend(object.required.iter().cloned());
            if merged.description.is_none() {
                merged.description.clone_from(&object.description);
            }
        }
    }
    merged
}

/// The bodies whose fields come in exclusive sets, which only counting or `oneOf` can say.
fn one_of_rule(name: &str) -> Option<fn(&mut utoipa::openapi::Components)> {
    match name {
        // `mfa_token` and exactly one of `totp`, `recovery_code`, `webauthn`.
        "MfaVerifyRequest" => {
            Some(|components| exactly_n_properties(components, "MfaVerifyRequest", 2))
        }
        // Exactly one of `password`, `totp`, `webauthn`.
        "ReauthenticateRequest" => {
            Some(|components| exactly_n_properties(components, "ReauthenticateRequest", 1))
        }
        "ResetPasswordRequest" => Some(|components| {
            variants(
                components,
                "ResetPasswordRequest",
                &[
                    ("ResetByLink", &["token", "new_password"]),
                    ("ResetByCode", &["email", "code", "new_password"]),
                ],
            )
        }),
        "EmailLoginVerifyRequest" => Some(|components| {
            variants(
                components,
                "EmailLoginVerifyRequest",
                &[
                    ("EmailLoginByLink", &["token"]),
                    ("EmailLoginByCode", &["email", "code"]),
                ],
            )
        }),
        _ => None,
    }
}

/// Counts the fields sent: each must then be a value, since the server reads `null` as absent.
fn exactly_n_properties(components: &mut utoipa::openapi::Components, name: &str, n: usize) {
    if let Some(RefOr::T(Schema::Object(object))) = components.schemas.get_mut(name) {
        object.min_properties = Some(n);
        object.max_properties = Some(n);
        for property in object.properties.values_mut() {
            *property = non_null(property);
        }
    }
}

/// `property` without `null` among its types.
fn non_null(property: &RefOr<Schema>) -> RefOr<Schema> {
    use utoipa::openapi::schema::{SchemaType, Type};
    let mut property = property.clone();
    if let RefOr::T(Schema::Object(object)) = &mut property
        && let SchemaType::Array(types) = &object.schema_type
    {
        let types: Vec<Type> = types
            .iter()
            .filter(|t| **t != Type::Null)
            .cloned()
            .collect();
        object.schema_type = match types.as_slice() {
            [one] => SchemaType::Type(one.clone()),
            _ => SchemaType::Array(types),
        };
    }
    property
}

/// The body `name` as a `oneOf` of closed objects, each with exactly its `fields`, all
/// required: a link's token or an address and its code, never a mix.
fn variants(components: &mut utoipa::openapi::Components, name: &str, forms: &[(&str, &[&str])]) {
    let Some(RefOr::T(Schema::Object(object))) = components.schemas.get(name) else {
        return;
    };
    let variant = |title: &str, fields: &[&str]| {
        let mut variant = Object::new();
        variant.title = Some(title.to_owned());
        for field in fields {
            if let Some(property) = object.properties.get(*field) {
                variant
                    .properties
                    .insert((*field).to_owned(), non_null(property));
                variant.required.push((*field).to_owned());
            }
        }
        variant.additional_properties = Some(Box::new(AdditionalProperties::FreeForm(false)));
        RefOr::T(Schema::Object(variant))
    };
    let mut one_of = utoipa::openapi::schema::OneOf::new();
    one_of.description.clone_from(&object.description);
    one_of.items = forms
        .iter()
        .map(|(title, fields)| variant(title, fields))
        .collect();
    components
        .schemas
        .insert(name.to_owned(), RefOr::T(Schema::OneOf(one_of)));
}

/// The constraints the configuration sets: the roles an admin may give, and the shortest new
/// password.
fn constrain_from_config(doc: &mut OpenApi, config: &crate::config::Config) {
    let Some(components) = doc.components.as_mut() else {
        return;
    };
    // `null` is "not given" (the default role; no change), as the server reads it.
    let roles: Vec<serde_json::Value> = config
        .roles
        .names()
        .map(serde_json::Value::from)
        .chain([serde_json::Value::Null])
        .collect();
    for name in [
        "CreateUserRequest",
        "UpdateUserRequest",
        "InvitationRequest",
    ] {
        if let Some(RefOr::T(Schema::Object(object))) = components.schemas.get_mut(name)
            && let Some(RefOr::T(Schema::Object(role))) = object.properties.get_mut("role")
        {
            role.enum_values = Some(roles.clone());
        }
    }
    if let Some(RefOr::T(Schema::Object(password))) = components.schemas.get_mut("NewPassword") {
        password.min_length = Some(config.password_policy.min_length);
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
