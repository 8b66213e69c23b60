// Worker vars that send every upstream to the loopback stand-ins under `base` (`<standins>/up/<namespace>`).
// No imports: used both inside workerd (exchange tests) and from Node (demo, end-to-end tests, benchmarks).
export function upstreamUrlVars(base: string) {
  return {
    GCP_STS_URL: `${base}/gcp/sts/v1/token`,
    GCP_IAM_CREDENTIALS_URL: `${base}/gcp/iam/v1`,
    AWS_STS_URL: `${base}/aws/{region}/`,
    AZURE_TOKEN_URL: `${base}/azure/{tenant}/oauth2/v2.0/token`,
  };
}
