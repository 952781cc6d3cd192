/**
 * @tanstack/virtual-core for Preact: {@link useVirtualizer} keeps a Virtualizer over a scrolling
 * element and re-renders when the visible range changes, so a list draws only the rows in view.
 */
import { useEffect, useLayoutEffect, useReducer, useState } from 'preact/hooks';
import {
  elementScroll,
  observeElementOffset,
  observeElementRect,
  Virtualizer,
  type VirtualizerOptions,
} from '@tanstack/virtual-core';

type Options = Pick<
  VirtualizerOptions<HTMLDivElement, HTMLDivElement>,
  'count' | 'getScrollElement' | 'estimateSize' | 'overscan' | 'getItemKey'
>;

/** A virtualizer over a `div` that scrolls vertically. */
export function useVirtualizer(options: Options): Virtualizer<HTMLDivElement, HTMLDivElement> {
  const [, rerender] = useReducer((x: number) => x + 1, 0);
  const full = (): VirtualizerOptions<HTMLDivElement, HTMLDivElement> => ({
    observeElementRect,
    observeElementOffset,
    scrollToFn: elementScroll,
    ...options,
    onChange: () => rerender(0),
  });
  const [instance] = useState(() => new Virtualizer<HTMLDivElement, HTMLDivElement>(full()));
  instance.setOptions(full());
  useEffect(() => instance._didMount(), []);
  useLayoutEffect(() => instance._willUpdate());
  return instance;
}
