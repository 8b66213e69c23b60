// Reads back the audit events of one request. They are written with waitUntil, after the response,
// so this polls briefly (up to about a second).
import { env } from "cloudflare:test";
import type { AuditEvent } from "../../../src/audit/audit-event";

export async function auditEventsFor(requestId: string): Promise<AuditEvent[]> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const { results } = await env.DB.prepare("SELECT * FROM audit_events WHERE request_id = ?")
      .bind(requestId)
      .all<AuditEvent>();
    if (results.length > 0) return results;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return [];
}
