-- POST with a fixed form body from $WRK_BODY; other headers come from wrk's -H.
wrk.method = "POST"
wrk.body = os.getenv("WRK_BODY") or ""
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
