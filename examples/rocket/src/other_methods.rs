//! Rocket routes on the method first and answers a method no route takes with 404, and it has
//! no CORS of its own: so each path gets a hand-made route for every other method, answering
//! `OPTIONS` with the path's CORS preflight and the rest with a JSON 405 and `Allow`.

use rocket::data::Data;
use rocket::http::{Method, Status};
use rocket::request::Request;
use rocket::response::Response;
use rocket::route::{self, Handler, Route};
use sse_core::{ApiError, CORS_ALLOW_HEADERS, CORS_MAX_AGE_SECS};

use crate::JsonError;

/// Every method Rocket knows (it answers any other with 400 before routing).
const METHODS: [Method; 9] = [
    Method::Get,
    Method::Head,
    Method::Post,
    Method::Put,
    Method::Delete,
    Method::Patch,
    Method::Options,
    Method::Trace,
    Method::Connect,
];

/// The routes of `path` for every method not in `allow` (whose routes are the handlers').
pub fn resource(path: &'static str, allow: &'static str) -> Vec<Route> {
    METHODS
        .into_iter()
        .filter(|method| !allow.split(", ").any(|m| m == method.as_str()))
        .map(|method| Route::new(method, path, OtherMethods { allow }))
        .collect()
}

#[derive(Clone)]
struct OtherMethods {
    allow: &'static str,
}

#[rocket::async_trait]
impl Handler for OtherMethods {
    async fn handle<'r>(&self, request: &'r Request<'_>, _: Data<'r>) -> route::Outcome<'r> {
        if request.method() == Method::Options {
            return route::Outcome::Success(
                Response::build()
                    .status(Status::NoContent)
                    .raw_header("access-control-allow-methods", self.allow)
                    .raw_header("access-control-allow-headers", CORS_ALLOW_HEADERS)
                    .raw_header("access-control-max-age", CORS_MAX_AGE_SECS.to_string())
                    .finalize(),
            );
        }
        let error = ApiError::method_not_allowed(
            request.method().as_str(),
            request.uri().path().as_str(),
            self.allow,
        );
        route::Outcome::from(request, JsonError(error))
    }
}
