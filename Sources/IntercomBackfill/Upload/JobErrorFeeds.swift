import Foundation

/// Reading a job's error feed (contract §1): a 2xx only meant *accepted*, items can still fail
/// inside the job. Everything here is bounded: the wait for completion and the paging share one
/// deadline, pages are capped, and a cursor seen before ends the paging.
extension Uploader {
    /// Waits (until `deadline`) for one job to complete, then writes its failed items to the
    /// rejects file with Intercom's code and message and the line they came from.
    func readErrorFeed(_ job: JobRecord, deadline: Double) async {
        // Requests that named the job before it retired may still add items to it.
        while await state.requestsInFlight(job: job.id) > 0, clock.now() < deadline {
            guard await stop.sleep(seconds: 0.05, clock: clock) else { break }
        }
        guard await waitForCompletion(job.id, deadline: deadline) else {
            logger.warning("job \(job.id) did not complete within --job-wait: its error feed was not read")
            await state.unreadJob(job)
            return
        }
        var next: String? = "/jobs/\(IntercomClient.pathSegment(job.id))/error"
        var seen = Set<String>()
        var unmatched = 0
        while let path = next {
            // A page seen before is where a looping feed ends; a feed longer than the page limit
            // or than --job-wait is not read to its end, so it counts as unread.
            guard seen.insert(path).inserted else { break }
            guard seen.count <= options.maxFeedPages, clock.now() < deadline || seen.count == 1 else {
                logger.warning(
                    "the error feed of job \(job.id) goes past \(options.maxFeedPages) pages or --job-wait: not read to its end")
                await state.unreadJob(job)
                return
            }
            // A page without a list of items is not a feed: taken for an empty one, it would
            // pass failed items as uploaded.
            guard let response = await get(path, deadline: deadline), response.isSuccess, let object = response.jsonObject,
                let items = object["items"] as? [Any]
            else {
                logger.warning("could not read the error feed of job \(job.id)")
                await state.unreadJob(job)
                return
            }
            for case let item as [String: Any] in items {
                if await !recordFailedJobItem(item, job: job) { unmatched += 1 }
            }
            next = Self.nextPagePath((object["pages"] as? [String: Any])?["next"], base: client.endpoint.baseURL)
        }
        if unmatched > 0 {
            logger.warning(
                "the error feed of job \(job.id) lists \(unmatched) items this run did not send there (or lists them again): counted apart, not as failed"
            )
            await state.unmatchedJobItems(unmatched)
        }
    }

    /// Writes one failed item down; false when it matches nothing this job still holds.
    private func recordFailedJobItem(_ item: [String: Any], job: JobRecord) async -> Bool {
        let error = item["error"] as? [String: Any]
        let code = (error?["code"] as? String) ?? "job_item_failed"
        let message = (error?["message"] as? String) ?? ""
        let data = (item["data"] as? [String: Any]) ?? [:]
        let kind: ItemKind = (item["data_type"] as? String) == "event" ? .event : job.kind
        guard kind == job.kind,
            let position = await state.takePosition(job: job.id, fingerprint: ItemFingerprint.fromObject(data, kind: kind))
        else {
            return false
        }
        let text =
            (try? JSONSerialization.data(withJSONObject: data, options: [.sortedKeys])).map {
                String(decoding: $0, as: UTF8.self)
            } ?? "{}"
        do {
            try rejects.write(
                source: sources.name(of: position.input), line: position.line, reason: code, detail: message, record: text)
        } catch {
            await state.setFatal(UploadFatalError(kind: .output, status: 0, code: "rejects_unwritable", message: "\(error)"))
            return true
        }
        await state.failedInJob(kind: kind, code: code)
        tracker?.failed(at: position, code: code)
        return true
    }

    private func waitForCompletion(_ id: String, deadline: Double) async -> Bool {
        while true {
            if let response = await get("/jobs/\(IntercomClient.pathSegment(id))", deadline: deadline), response.isSuccess,
                (response.jsonObject?["state"] as? String) == "completed"
            {
                return true
            }
            if clock.now() >= deadline || stop.isRequested { return false }
            guard await stop.sleep(seconds: min(options.jobPollInterval, max(0, deadline - clock.now())), clock: clock) else {
                return false
            }
        }
    }

    /// A GET with the same rate limiting and a few retries for transient failures, within `deadline`.
    private func get(_ path: String, deadline: Double) async -> IntercomResponse? {
        for attempt in 0...3 {
            guard attempt == 0 || clock.now() < deadline, await limiter.acquire() else { return nil }
            await state.countRequest()
            do {
                let response = try await client.get(path)
                let headers = RateLimitHeaders(response.headers)
                await limiter.update(headers)
                if response.status == 429 {
                    let now = clock.now()
                    await limiter.exhausted(until: headers.retryAfter.map { now + $0 } ?? headers.reset ?? now, atLeast: 1)
                    continue
                }
                // A server hiccup is not a spent budget: back off this call only.
                if response.status >= 500 {
                    _ = await stop.sleep(seconds: backoff(attempt), clock: clock)
                    continue
                }
                return response
            } catch {
                await limiter.requestEndedWithoutAnswer()
                _ = await stop.sleep(seconds: backoff(attempt), clock: clock)
            }
        }
        return nil
    }

    private func backoff(_ attempt: Int) -> Double {
        Double.random(in: 0...min(options.maxBackoff, options.baseBackoff * pow(2, Double(attempt))))
    }

    /// The path of the next page: only on the configured origin (a page elsewhere is not followed).
    static func nextPagePath(_ next: Any?, base: String) -> String? {
        guard let next = next as? String, !next.isEmpty else { return nil }
        if next.hasPrefix(base + "/") { return String(next.dropFirst(base.count)) }
        if next.hasPrefix("/"), !next.hasPrefix("//") { return next }
        return nil
    }
}
