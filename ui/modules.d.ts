// Type declarations for the page's imports that ship none.
declare module "cytoscape-fcose" {
  import type { Ext } from "cytoscape";

  const fcose: Ext;
  export default fcose;
}
declare module "*.css";
