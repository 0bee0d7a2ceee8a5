// The main job as a library: one function each, taking typed options and a Session (one
// Runner per host URI; a dry-run Session records instead of changing).
export { exportImage, exportSteps, undoCommand, type ExportResult } from './export.js';
export { unexportImage, type UnexportOptions, type UnexportResult } from './unexport.js';
export { exportStatus, type ExportHealth, type ExportStatus, type Health, type StatusOptions } from './status.js';
export { resolveExport, type ResolvedExport } from './resolve.js';
export { DEFAULT_HOST_RECORD_DIR, EXPORT_MODES, listRecords, localStateDir, readRecord, type Attachment, type ExportMode, type ExportRecord } from './records.js';
export type { ExportOptions, RecordDirs, StepId, WorkflowHooks, WorkflowStep } from './types.js';
