import Foundation

// The hot-path types read and write themselves by hand (FastJSON.swift). Keys are written in
// sorted byte order, as `JSONCoding.encoder()` sorts them; FastJSONTests checks both paths
// give the same bytes and the same values.

extension Location: FastJSONDecodable, FastJSONEncodable {
    public init(fastJSON fields: JSONFields) throws(FastJSONMiss) {
        self.init(province: try fields.string("province"), regency: try fields.optionalString("regency"))
    }

    public func write(to writer: inout JSONWriter) {
        writer.beginObject()
        writer.field("province", province)
        writer.field("regency", regency)
        writer.endObject()
    }
}

extension Subject: FastJSONDecodable, FastJSONEncodable {
    public init(fastJSON fields: JSONFields) throws(FastJSONMiss) {
        self.init(
            ageBand: try fields.string("age_band"), gender: try fields.string("gender"),
            nationality: try fields.string("nationality"), languages: try fields.strings("languages"),
            child: try fields.bool("child"), needs: try fields.strings("needs"),
            name: try fields.optionalString("name"), contact: try fields.optionalString("contact"))
    }

    public func write(to writer: inout JSONWriter) {
        writer.beginObject()
        writer.field("age_band", ageBand)
        writer.field("child", child)
        writer.field("contact", contact)
        writer.field("gender", gender)
        writer.field("languages", languages)
        writer.field("name", name)
        writer.field("nationality", nationality)
        writer.field("needs", needs)
        writer.endObject()
    }
}

extension Consent: FastJSONDecodable, FastJSONEncodable {
    public init(fastJSON fields: JSONFields) throws(FastJSONMiss) {
        self.init(
            status: try fields.value("status"), scope: try fields.values("scope"), date: try fields.date("date"),
            recordedBy: try fields.string("recorded_by"), ground: try fields.optionalValue("ground"),
            justification: try fields.optionalString("justification"))
    }

    public func write(to writer: inout JSONWriter) {
        writer.beginObject()
        writer.field("date", date)
        writer.field("ground", ground)
        writer.field("justification", justification)
        writer.field("recorded_by", recordedBy)
        writer.field("scope", scope)
        writer.field("status", status)
        writer.endObject()
    }
}

extension ReferralBody: FastJSONDecodable, FastJSONEncodable {
    public init(fastJSON fields: JSONFields) throws(FastJSONMiss) {
        self.init(
            subject: try Subject(fastJSON: fields.object("subject")), consent: try Consent(fastJSON: fields.object("consent")),
            reason: try fields.optionalString("reason"), notes: try fields.optionalString("notes"))
    }

    public func write(to writer: inout JSONWriter) {
        writer.beginObject()
        writer.field("consent", consent)
        writer.field("notes", notes)
        writer.field("reason", reason)
        writer.field("subject", subject)
        writer.endObject()
    }
}

extension Referral: FastJSONDecodable, FastJSONEncodable {
    public init(fastJSON fields: JSONFields) throws(FastJSONMiss) {
        self.init(
            id: try fields.string("id"), caseRef: try fields.string("case_ref"), from: try fields.string("from"),
            to: try fields.string("to"), service: try fields.value("service"), priority: try fields.value("priority"),
            location: try Location(fastJSON: fields.object("location")), reason: try fields.value("reason"),
            createdAt: try fields.date("created_at"), dueReceive: try fields.date("due_receive"),
            dueRespond: try fields.date("due_respond"), dueComplete: try fields.date("due_complete"),
            consent: try ConsentClaim(fastJSON: fields.object("consent")), sealed: try SealedBody(fastJSON: fields.object("sealed")))
    }

    public func write(to writer: inout JSONWriter) {
        writer.beginObject()
        writer.field("case_ref", caseRef)
        writer.field("consent", consent)
        writer.field("created_at", createdAt)
        writer.field("due_complete", dueComplete)
        writer.field("due_receive", dueReceive)
        writer.field("due_respond", dueRespond)
        writer.field("from", from)
        writer.field("id", id)
        writer.field("location", location)
        writer.field("priority", priority)
        writer.field("reason", reason)
        writer.field("sealed", sealed)
        writer.field("service", service)
        writer.field("to", to)
        writer.endObject()
    }
}

extension ConsentClaim: FastJSONDecodable, FastJSONEncodable {
    public init(fastJSON fields: JSONFields) throws(FastJSONMiss) {
        self.init(status: try fields.value("status"), scope: try fields.values("scope"), ground: try fields.optionalValue("ground"))
    }

    public func write(to writer: inout JSONWriter) {
        writer.beginObject()
        writer.field("ground", ground)
        writer.field("scope", scope)
        writer.field("status", status)
        writer.endObject()
    }
}

extension SealedBody: FastJSONDecodable, FastJSONEncodable {
    public init(fastJSON fields: JSONFields) throws(FastJSONMiss) {
        self.init(suite: try fields.string("suite"), enc: try fields.string("enc"), ct: try fields.string("ct"), seq: try fields.optionalInt("seq"))
    }

    public func write(to writer: inout JSONWriter) {
        writer.beginObject()
        writer.field("ct", ct)
        writer.field("enc", enc)
        if let seq { writer.field("seq", seq) }
        writer.field("suite", suite)
        writer.endObject()
    }
}

extension HandoffEvent: FastJSONDecodable, FastJSONEncodable {
    public init(fastJSON fields: JSONFields) throws(FastJSONMiss) {
        self.init(
            id: try fields.string("id"), referralId: try fields.string("referral_id"), by: try fields.string("by"),
            status: try fields.value("status"), reason: try fields.optionalValue("reason"),
            outcome: try fields.optionalValue("outcome"), sealed: try fields.optionalObject("sealed").map(SealedBody.init(fastJSON:)),
            note: try fields.optionalObject("note").map(UpdateNote.init(fastJSON:)), at: try fields.date("at"))
    }

    public func write(to writer: inout JSONWriter) {
        writer.beginObject()
        writer.field("at", at)
        writer.field("by", by)
        writer.field("id", id)
        writer.field("note", note)
        writer.field("outcome", outcome)
        writer.field("reason", reason)
        writer.field("referral_id", referralId)
        writer.field("sealed", sealed)
        writer.field("status", status)
        writer.endObject()
    }
}

extension UpdateNote: FastJSONDecodable, FastJSONEncodable {
    public init(fastJSON fields: JSONFields) throws(FastJSONMiss) {
        self.init(reason: try fields.optionalString("reason"), outcome: try fields.optionalString("outcome"))
    }

    public func write(to writer: inout JSONWriter) {
        writer.beginObject()
        writer.field("outcome", outcome)
        writer.field("reason", reason)
        writer.endObject()
    }
}

extension Commit: FastJSONDecodable, FastJSONEncodable {
    public init(fastJSON fields: JSONFields) throws(FastJSONMiss) {
        self.init(ids: try fields.strings("ids"))
    }

    public func write(to writer: inout JSONWriter) {
        writer.beginObject()
        writer.field("ids", ids)
        writer.endObject()
    }
}

extension Receipt: FastJSONDecodable, FastJSONEncodable {
    public init(fastJSON fields: JSONFields) throws(FastJSONMiss) {
        self.init(ids: try fields.strings("ids"))
    }

    public func write(to writer: inout JSONWriter) {
        writer.beginObject()
        writer.field("ids", ids)
        writer.endObject()
    }
}

extension DeliveryHeader: FastJSONDecodable, FastJSONEncodable {
    public init(fastJSON fields: JSONFields) throws(FastJSONMiss) {
        self.init(kind: try fields.value("kind"), id: try fields.string("id"), attempt: try fields.int("attempt"))
    }

    public func write(to writer: inout JSONWriter) {
        writer.beginObject()
        writer.field("attempt", attempt)
        writer.field("id", id)
        writer.field("kind", kind)
        writer.endObject()
    }
}

extension ProtocolError: FastJSONEncodable {
    public func write(to writer: inout JSONWriter) {
        writer.beginObject()
        writer.field("code", code.rawValue)
        writer.field("id", id)
        writer.field("reason", reason)
        writer.endObject()
    }
}

extension HandoffView: FastJSONEncodable {
    public func write(to writer: inout JSONWriter) {
        writer.beginObject()
        writer.field("body", body)
        writer.field("case_ref", caseRef)
        writer.field("created_at", createdAt)
        writer.field("delivery", delivery)
        writer.field("direction", direction)
        writer.field("due_complete", dueComplete)
        writer.field("due_receive", dueReceive)
        writer.field("due_respond", dueRespond)
        writer.field("from", from)
        writer.field("history", history)
        writer.field("id", id)
        writer.field("location", location)
        writer.field("overdue", overdue)
        writer.field("priority", priority)
        writer.field("reason", reason)
        writer.field("service", service)
        writer.field("status", status)
        writer.field("to", to)
        writer.field("updated_at", updatedAt)
        writer.endObject()
    }
}

extension Escalation: FastJSONDecodable, FastJSONEncodable {
    public init(fastJSON fields: JSONFields) throws(FastJSONMiss) {
        self.init(
            id: try fields.string("id"), referralId: try fields.string("referral_id"), notice: try fields.value("notice"),
            level: try fields.int("level"), clock: try fields.value("clock"), from: try fields.string("from"), to: try fields.string("to"),
            targets: try fields.strings("targets"), service: try fields.value("service"), priority: try fields.value("priority"),
            province: try fields.string("province"), due: try fields.date("due"), status: try fields.value("status"),
            suggestions: try fields.strings("suggestions"), at: try fields.date("at"))
    }

    public func write(to writer: inout JSONWriter) {
        writer.beginObject()
        writer.field("at", at)
        writer.field("clock", clock)
        writer.field("due", due)
        writer.field("from", from)
        writer.field("id", id)
        writer.field("level", level)
        writer.field("notice", notice)
        writer.field("priority", priority)
        writer.field("province", province)
        writer.field("referral_id", referralId)
        writer.field("service", service)
        writer.field("status", status)
        writer.field("suggestions", suggestions)
        writer.field("targets", targets)
        writer.field("to", to)
        writer.endObject()
    }
}
