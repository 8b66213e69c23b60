// Public keys nobody holds the private half of, one per key type. A token refused before its signature
// was checked (unknown issuer, algorithm or kid) is still checked against one of them, so that it costs
// what a configured issuer's forged token costs: response time must not tell which issuers are
// configured. The check always fails; its result is never used.

import { importJWK } from "jose";
import { isSupportedAlgorithm, keyFitsAlgorithm } from "./algorithms";

/** Generated once for this purpose; the private keys were discarded. RSA is 2048 bits, as GitLab's CI signing key. */
const DECOY_KEYS: readonly JsonWebKey[] = [
  {
    kty: "RSA",
    e: "AQAB",
    n:
      "qCE3TDwTjqeO5zevlyDGoOkoQcPTmCh5KfPfWvw9xiH4Ur7Sm-YhiPjPTtCbINh2EMQs7_IUvCs8yWVgvloLMYu5Oxrxo24scf-y9jC9XbFQ_FvV4TaAJEhm5Qax4ObqjDCPlePJq3_81YvFsQxVF6lX" +
      "yM-z_4Oh7Hdd77mdrRea3EbNOkFptbNstnnh7C5LuKclnCoHLUqb7KiOPE0A5GFPUmiUdY_ILo31FGGcKQl9td2m41SgAc8K1zHLHY0Xpdai4oXtpCK-RTe5aQ4S35UueUPL1F3p0SwIOH6Rm9SkuA-" +
      "pmVun1IywpdgKzt1ytnxB8XpEpzQj02Gt_7jFDQ",
  },
  {
    kty: "EC",
    crv: "P-256",
    x: "i_gfDoWKM5nqnfkUXGykJP49FEJx7livfoJYJdH1R5o",
    y: "Uk0pkWLZ1fdgnZ6E8qJyIBF7H_YaLObjX3mKPOz0U8Q",
  },
  {
    kty: "EC",
    crv: "P-384",
    x: "syUBVGbvfh1uxFIwytYv5Z-PsQgaujQzH_8KIStBZF1Vv2QThk6-W8REDfEwHbQY",
    y: "29uGAH8OMXbpgX79p6xUdGrRWUktQ89zZIly04Sr9MneYGUzWOU4jDKcthlhRJZ1",
  },
  {
    kty: "EC",
    crv: "P-521",
    x: "AV9sf6xe7RLFwu6M3DjOC04O_eUclqDd2BYvYVbkyuCWuiKBnZ5UzX9p7YfLXZxhBUlrlISm80aRoAlepBKCNHrT",
    y: "AUDgjQqsmX6905SIpll_CdaxUq74AZv3F2oyU-O1vwlms0R1z7_Yl5ilKmwwxEIvPqyBAsqU6qZh9hIEiSLCcwh-",
  },
  { kty: "OKP", crv: "Ed25519", x: "TJzHhBjHnMhuEd-ixHdIrJ8u3Mwwj1bXKrtvlnjylgk" },
];

/** Imported once per algorithm and isolate. */
const imported = new Map<string, Promise<CryptoKey>>();

/**
 * The algorithm and key of the decoy check for a token whose header names `alg`: that algorithm when
 * gatepass supports it (as a configured issuer's key would be used), RS256 (GitLab's) otherwise.
 */
export function decoyKey(alg: string): { alg: string; key: Promise<CryptoKey> } {
  const used = isSupportedAlgorithm(alg) ? alg : "RS256";
  let key = imported.get(used);
  if (!key) {
    const jwk = DECOY_KEYS.find((candidate) => keyFitsAlgorithm(used, candidate as { kty?: string; crv?: string }))!;
    key = importJWK({ ...jwk, alg: used }, used) as Promise<CryptoKey>;
    imported.set(used, key);
  }
  return { alg: used, key };
}
