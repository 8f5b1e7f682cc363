export { InputTooLargeError, OutputStore, byteCap, parseS3Url } from './output-store';
export type { S3Settings } from './output-store';
