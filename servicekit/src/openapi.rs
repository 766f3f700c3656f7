//! A service's HTTP surface: its OpenAPI operations at `/`, the document at
//! `/openapi.json` and Swagger UI at `/docs`.

use poem::http::Method;
use poem::{Endpoint, EndpointExt, IntoResponse, Route};
use poem_openapi::{OpenApi, OpenApiService};

/// Routes for `api` (plus the health endpoints for `readiness`), described
/// as `title` `version`, its requests admitted by `admission`.
pub fn openapi_routes<T: OpenApi + 'static>(
    api: T,
    readiness: crate::Readiness,
    admission: crate::admission::Admission,
    title: &str,
    version: &str,
) -> Route {
    let api = OpenApiService::new((api, crate::HealthApi::new(readiness)), title, version);
    let docs = api.swagger_ui();
    let spec = api.spec_endpoint();
    Route::new()
        .at(
            "/",
            poem::endpoint::make_sync(|_| poem::web::Redirect::see_other("/docs")),
        )
        .nest("/docs", docs)
        .at("/openapi.json", spec)
        .nest(
            "/",
            admission.guard(crate::friendly_errors::friendly_errors::<
                (T, crate::HealthApi),
                _,
            >(poem::IntoEndpoint::into_endpoint(api))),
        )
}

/// `ep`, with `GET /` redirected to Swagger UI at `/docs` (a person who
/// points a browser at the server lands on the documentation).
pub fn docs_at_root<E: Endpoint + 'static>(ep: E) -> impl Endpoint {
    ep.around(|ep, req| async move {
        if req.uri().path() == "/" && req.method() == Method::GET {
            return Ok(poem::web::Redirect::see_other("/docs").into_response());
        }
        ep.call(req).await.map(IntoResponse::into_response)
    })
}
