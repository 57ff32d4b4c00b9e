/** Replace how workers start (node.js does, with worker_threads). @param {WorkerHost} next */
export function setWorkerHost(next: WorkerHost): void;
/** Whether a worker can start here at all (false: no Worker global and no other host). */
export function workersAvailable(): boolean;
/**
 * Start one worker. `onMessage` gets its messages; `onError` a WorkerError if it fails.
 * @param {{url?: string | URL, onMessage: (data: any) => void, onError: (err: WorkerError) => void}} opts
 * @returns {WorkerHandle}
 */
export function startWorker(opts: {
    url?: string | URL;
    onMessage: (data: any) => void;
    onError: (err: WorkerError) => void;
}): WorkerHandle;
/**
 * One operation in a worker of its own: resolves with its `done` message, passes `progress`
 * messages on, rejects with CancelledError when `signal` fires (the worker is terminated), with
 * `onFailure(code, message)`'s error for an `error` message, with WorkerError if the worker fails.
 * @param {Record<string, unknown>} message
 * @param {{signal?: AbortSignal, url?: string | URL, onProgress?: (data: any) => void, onFailure?: (code: string, message: string) => Error | undefined}} [opts]
 * @returns {Promise<any>}
 */
export function runInWorker(message: Record<string, unknown>, opts?: {
    signal?: AbortSignal;
    url?: string | URL;
    onProgress?: (data: any) => void;
    onFailure?: (code: string, message: string) => Error | undefined;
}): Promise<any>;
export type WorkerHandle = {
    post: (message: unknown) => void;
    stop: () => void;
};
export type WorkerHost = (opts: {
    url?: string | URL;
    onMessage: (data: any) => void;
    onError: (err: WorkerError) => void;
}) => WorkerHandle;
import { WorkerError } from './errors.js';
