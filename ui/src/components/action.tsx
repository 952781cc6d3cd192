/**
 * A button whose action is confirmed first: it opens a dialog saying what will happen, runs the
 * action on "confirm", closes on success, and on a refusal stays open with the API's message. The
 * dialog's inputs are not checked by the browser (`noValidate`): the engine's 400 says what is wrong.
 */
import type { ComponentChildren, JSX } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { messageOf } from '../lib/api';
import { ErrorBox } from './common';

export interface ActionButtonProps {
  /** The button's text. */
  label: string;
  /** The dialog's title; default the label. */
  title?: string;
  /** What will happen, said in the dialog. Without it (and without `body`) the action runs at once. */
  confirm?: ComponentChildren;
  /** Inputs shown in the dialog (a priority, a time). */
  body?: ComponentChildren;
  /** The confirm button's text; default the label. */
  confirmLabel?: string;
  /** Runs the action; a thrown error is shown in the dialog. */
  run: () => Promise<unknown>;
  /** Called after the action succeeded. */
  onDone?: (result: unknown) => void;
  danger?: boolean;
  disabled?: boolean;
  /** A hint on the button (why it is disabled). */
  hint?: string;
  class?: string;
}

/** A confirmed action (see the module comment). */
export function ActionButton(p: ActionButtonProps): JSX.Element {
  const [open, setOpen] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const confirmRef = useRef<HTMLButtonElement>(null);

  const go = async (): Promise<void> => {
    setBusy(true);
    setError(null);
    try {
      const result = await p.run();
      setOpen(false);
      p.onDone?.(result);
    } catch (err) {
      setError(messageOf(err));
      setOpen(true);
    } finally {
      setBusy(false);
    }
  };

  useEffect(() => {
    if (!open) return;
    if (!p.body) confirmRef.current?.focus();
    const onKey = (e: KeyboardEvent): void => {
      if (e.key === 'Escape') setOpen(false);
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, [open]);

  const needsDialog = p.confirm !== undefined || p.body !== undefined;
  return (
    <>
      <button
        type="button"
        class={`${p.danger ? 'danger' : ''} ${p.class ?? ''}`.trim()}
        disabled={p.disabled || busy}
        title={p.hint}
        onClick={() => {
          setError(null);
          if (needsDialog) setOpen(true);
          else void go();
        }}
      >
        {p.label}
      </button>
      {open ? (
        <div
          class="backdrop"
          role="dialog"
          aria-modal="true"
          aria-label={p.title ?? p.label}
          onClick={(e) => {
            if (e.target === e.currentTarget && !busy) setOpen(false);
          }}
        >
          <form
            class="dialog"
            aria-label={p.title ?? p.label}
            // The engine decides what a value may be: what was typed is sent, and a refusal shows
            // the engine's own message (a browser-side min/max check would only show its own).
            noValidate
            onSubmit={(e) => {
              e.preventDefault();
              void go();
            }}
          >
            <h3>{p.title ?? p.label}</h3>
            {p.confirm ? <div class="dialog-text">{p.confirm}</div> : null}
            {p.body}
            <ErrorBox error={error} title="Refused" />
            <div class="dialog-buttons">
              <button type="button" onClick={() => setOpen(false)} disabled={busy}>
                Cancel
              </button>
              <button type="submit" ref={confirmRef} class={p.danger ? 'danger' : 'primary'} disabled={busy}>
                {busy ? 'Working…' : (p.confirmLabel ?? p.label)}
              </button>
            </div>
          </form>
        </div>
      ) : null}
      {!open && error && !needsDialog ? <ErrorBox error={error} /> : null}
    </>
  );
}
