import XCTest

@testable import IntercomBackfill

/// Contract §5: group calls and companies.
final class CompanyMappingTests: XCTestCase {
    func test_group_buildsCompanyFromGroupIdAndTraits_inKeyOrder() {
        let line = """
            {"type":"group","userId":"u","groupId":"g1","context":{"traits":{"email":"e@x.io"}},"traits":{"id":"ignored","company_id":"ignored",\
            "name":"Acme","plan":"enterprise","monthlySpend":"99.5","createdAt":"2020-01-01","employees":"250","website":"https://acme.io",\
            "industry":"Tools","region":{"name":"EU"},"userId":"x"}}
            """
        XCTAssertEqual(
            mappedData(line),
            """
            {"user_id":"u","email":"e@x.io","companies":[{"company_id":"g1","name":"Acme","plan":"enterprise","monthly_spend":99.5,\
            "remote_created_at":1577836800,"size":250,"website":"https://acme.io","industry":"Tools","custom_attributes":{"region_name":"EU"}}]}
            """)
    }

    func test_group_numericGroupId_isItsText() {
        XCTAssertEqual(
            mappedData("{\"type\":\"group\",\"userId\":\"u\",\"groupId\":42}"),
            "{\"user_id\":\"u\",\"companies\":[{\"company_id\":\"42\"}]}")
    }

    func test_group_missingOrEmptyGroupId_isRejected() {
        XCTAssertEqual(bucket("{\"type\":\"group\",\"userId\":\"u\"}"), "rejected:missing_group_id")
        XCTAssertEqual(bucket("{\"type\":\"group\",\"userId\":\"u\",\"groupId\":\"\"}"), "rejected:missing_group_id")
        XCTAssertEqual(bucket("{\"type\":\"group\",\"userId\":\"u\",\"groupId\":{}}"), "rejected:missing_group_id")
    }

    func test_companyRemove_sendsOnlyIdAndRemove() {
        XCTAssertEqual(
            mappedData("{\"type\":\"group\",\"userId\":\"u\",\"groupId\":\"g\",\"traits\":{\"name\":\"Acme\",\"remove\":true}}"),
            "{\"user_id\":\"u\",\"companies\":[{\"company_id\":\"g\",\"remove\":true}]}")
        XCTAssertEqual(
            mappedData(
                "{\"type\":\"identify\",\"userId\":\"u\",\"traits\":{\"company\":{\"id\":7,\"name\":\"A\",\"remove\":true}}}"),
            "{\"user_id\":\"u\",\"companies\":[{\"company_id\":\"7\",\"remove\":true}]}")
    }

    func test_identifyCompany_idThenCompanyIdThenMD5OfName() {
        XCTAssertEqual(
            mappedData(
                "{\"type\":\"identify\",\"userId\":\"u\",\"traits\":{\"company\":{\"company_id\":\"c9\",\"name\":\"A\"}}}"),
            "{\"user_id\":\"u\",\"companies\":[{\"company_id\":\"c9\",\"name\":\"A\"}]}")
        // md5("Acme") = 2a4c7ea4...; a string company is its name.
        XCTAssertEqual(
            mappedData("{\"type\":\"identify\",\"userId\":\"u\",\"traits\":{\"company\":\"Acme\"}}"),
            "{\"user_id\":\"u\",\"companies\":[{\"company_id\":\"\(String(decoding: MD5.hexDigest(Array("Acme".utf8)), as: UTF8.self))\",\"name\":\"Acme\"}]}"
        )
    }

    func test_md5_matchesKnownDigests() {
        XCTAssertEqual(String(decoding: MD5.hexDigest([UInt8]()), as: UTF8.self), "d41d8cd98f00b204e9800998ecf8427e")
        XCTAssertEqual(
            String(decoding: MD5.hexDigest(Array("The quick brown fox jumps over the lazy dog".utf8)), as: UTF8.self),
            "9e107d9d372bb6826bd81d3542a419d6")
        XCTAssertEqual(String(decoding: MD5.hexDigest(Array("Zoë".utf8)), as: UTF8.self).count, 32)
    }

    func test_companyWithoutIdOrName_isLeftOut() {
        XCTAssertEqual(
            mappedData("{\"type\":\"identify\",\"userId\":\"u\",\"traits\":{\"company\":{\"plan\":\"x\"}}}"),
            "{\"user_id\":\"u\"}")
    }

    func test_companyThenCompanies_inOrder() {
        let data = object(
            mappedData(
                "{\"type\":\"identify\",\"userId\":\"u\",\"traits\":{\"companies\":[{\"id\":\"b\"},{\"id\":\"c\"}],\"company\":{\"id\":\"a\"}}}"
            ))
        let ids = (data["companies"] as? [[String: Any]])?.compactMap { $0["company_id"] as? String }
        XCTAssertEqual(ids, ["a", "b", "c"])
    }

    func test_monthlySpendAndSize_acceptOnlyExactNumbers() {
        let data = object(
            mappedData(
                "{\"type\":\"group\",\"userId\":\"u\",\"groupId\":\"g\",\"traits\":{\"monthlySpend\":\" 9\",\"employees\":\"many\",\"size\":12}}"
            ))
        let company = (data["companies"] as? [[String: Any]])?.first
        XCTAssertNil(company?["monthly_spend"])
        XCTAssertEqual(company?["size"] as? Int, 12)
        let b = object(mappedData("{\"type\":\"group\",\"userId\":\"u\",\"groupId\":\"g\",\"traits\":{\"employees\":\"2.5\"}}"))
        XCTAssertNil((b["companies"] as? [[String: Any]])?.first?["size"])
    }

    func test_invalidCompanyCreatedAt_isWarned() {
        var mapper = RecordMapper()
        _ = mapRecord(
            "{\"type\":\"group\",\"userId\":\"u\",\"groupId\":\"g\",\"traits\":{\"createdAt\":\"then\"}}", mapper: &mapper)
        XCTAssertEqual(mapper.warnings[.invalidCompanyCreatedAt], 1)
    }
}
