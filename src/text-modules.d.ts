// Text modules bundled by wrangler ([[rules]] type = "Text" in wrangler.toml).
declare module "*.yml" {
  const text: string;
  export default text;
}
