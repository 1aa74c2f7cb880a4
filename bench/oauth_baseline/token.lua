-- wrk: POST the client_credentials form to the token endpoint with HTTP Basic client
-- authentication (RFC 6749 §2.3.1). BENCH_BASIC is base64(client_id:client_secret),
-- BENCH_FORM the urlencoded form; both set by run.py.
wrk.method = "POST"
wrk.body = os.getenv("BENCH_FORM")
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic " .. os.getenv("BENCH_BASIC")
