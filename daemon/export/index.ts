export { arrowExport, exportSchema, EXPORT_SCHEMA_VERSION, type ArrowExportOptions } from './arrow.js';
export { arrowToCsv, arrowToParquet, EXPORT_FORMATS, type ExportFormat } from './convert.js';
